//! `launchctl` failure classification from exit code and stderr: total, and the codes launchd
//! documents decide alone.
#![no_main]

use adapters_macos::fuzzing::classify_launchctl_failure;
use libfuzzer_sys::fuzz_target;

/// The phrases that classify an unknown code; without one of them it is `Other`.
const PHRASES: [&str; 9] = [
    "Could not find service",
    "No such process",
    "Operation not permitted",
    "Not privileged",
    "Permission denied",
    "Input/output error",
    "Operation already in progress",
    "Domain does not support specified action",
    "Service is disabled",
];

fuzz_target!(|data: &[u8]| {
    // First byte picks the exit code (the ones launchctl gives, none, or the next four bytes).
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (code, rest) = match pick % 10 {
        0 => (None, rest),
        1 => (Some(1), rest),
        2 => (Some(3), rest),
        3 => (Some(5), rest),
        4 => (Some(37), rest),
        5 => (Some(113), rest),
        6 => (Some(119), rest),
        7 => (Some(125), rest),
        _ if rest.len() >= 4 => (
            Some(i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]])),
            &rest[4..],
        ),
        _ => (Some(0), rest),
    };
    let stderr = String::from_utf8_lossy(rest);
    let failure = classify_launchctl_failure(code, &stderr);
    let expected = match code {
        Some(113) => Some("NotFound"),
        Some(5) => Some("InputOutput"),
        Some(37) => Some("AlreadyInProgress"),
        Some(125) => Some("DomainUnsupported"),
        Some(119) => Some("ServiceDisabled"),
        // ESRCH from bootout, in either wording.
        Some(3) if stderr.contains("No such process") || stderr.contains("Boot-out failed") => {
            Some("NoSuchProcess")
        }
        _ if !PHRASES.iter().any(|p| stderr.contains(p)) => Some("Other"),
        _ => None,
    };
    if let Some(expected) = expected {
        assert_eq!(failure, expected, "code {code:?}, stderr {stderr:?}");
    }
});
