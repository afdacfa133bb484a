//! `launchctl print <target>`: no panic, and what it reports is self-consistent.
#![no_main]

use adapters_macos::launchd::parse::{parse_print, LastExitCode};
use libfuzzer_sys::fuzz_target;
use process_manager::ExitStatus;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(info) = parse_print(&text) else {
        return;
    };
    assert_eq!(info.target, info.target.trim(), "the target is trimmed");
    // A signal is only ever read from the description that names it.
    if let Some(LastExitCode::Signal(_)) = info.last_exit_code {
        assert!(info.last_exit_description.is_some(), "{info:?}");
    }
    if info.last_exit_code == Some(LastExitCode::NeverExited) {
        assert!(info.last_exit_description.is_none(), "{info:?}");
    }
    // `last terminating signal` wins over the exit code line.
    match (info.last_signal, info.last_exit_code) {
        (Some(s), _) => assert_eq!(info.last_exit(), Some(ExitStatus::Signal(s))),
        (None, None | Some(LastExitCode::NeverExited)) => assert_eq!(info.last_exit(), None),
        (None, Some(LastExitCode::Code(c))) => {
            assert_eq!(info.last_exit(), Some(ExitStatus::Code(c)))
        }
        (None, Some(LastExitCode::Signal(s))) => {
            assert_eq!(info.last_exit(), Some(ExitStatus::Signal(s)))
        }
    }
});
