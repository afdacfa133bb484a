//! Linux adapters: `SystemdProcessManager` (systemd through `systemctl` and generated unit files)
//! and `DockerRuntime` (a local or remote Docker Engine through bollard).
//!
//! Not built yet; tracked by the "Linux adapters" issue.
