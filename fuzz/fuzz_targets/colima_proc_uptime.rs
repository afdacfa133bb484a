//! The VM's `/proc/uptime`: no panic; seconds are the first number, finite and not negative,
//! rounded down.
#![no_main]

use adapters_macos::colima::parse::parse_proc_uptime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(secs) = parse_proc_uptime(&text) else {
        return;
    };
    let first: f64 = text
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .expect("a parsed uptime starts with a number");
    assert!(first.is_finite() && first >= 0.0);
    assert_eq!(secs, first as u64);
});
