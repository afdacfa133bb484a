//! macOS adapters: `LaunchdProcessManager` (launchd through `launchctl` and generated plists) and
//! `ColimaRuntime` (the Colima VM through the `colima` CLI). They compile on every OS: they shell
//! out by argv, so their tests run on Linux against a faithful fake `launchctl`/`colima` and real
//! captured outputs.
//!
//! Not built yet; tracked by the "macOS adapters" issue.
