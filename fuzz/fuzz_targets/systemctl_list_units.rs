//! `systemctl list-units --output=json`: no panic; empty output is no units.
#![no_main]

use adapters_linux::fuzzing::parse_list_units;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_list_units(&text);
    if text.trim().is_empty() {
        assert_eq!(parsed, Ok(Vec::new()));
    }
});
