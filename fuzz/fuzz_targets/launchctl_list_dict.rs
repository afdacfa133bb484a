//! `launchctl list <label>` (the dict form): no panic, and the typed fields agree with the raw
//! ones they were read from.
#![no_main]

use adapters_macos::launchd::parse::{decode_wait_status, parse_list_dict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(dict) = parse_list_dict(&text) else {
        return;
    };
    assert_eq!(dict.fields.get("Label"), Some(&dict.label));
    assert_eq!(dict.program.as_ref(), dict.fields.get("Program"));
    assert_eq!(dict.pid.is_some(), dict.fields.contains_key("PID"));
    assert_eq!(
        dict.last_exit(),
        dict.last_exit_status.map(decode_wait_status)
    );
});
