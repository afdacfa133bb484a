//! `colima list`, as NDJSON (`--json`) and as the table older versions print: no panic; JSON
//! addresses are the VM's own; every table row is one non-blank line with a one-word profile.
#![no_main]

use adapters_macos::colima::parse::{parse_list_json, parse_list_table};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(profiles) = parse_list_json(&text) {
        assert_eq!(
            profiles.len(),
            text.lines().filter(|l| !l.trim().is_empty()).count()
        );
        for p in &profiles {
            let _ = p.is_running();
            if let Some(ip) = p.address {
                assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
            }
        }
    }
    if let Ok(profiles) = parse_list_table(&text) {
        // The header is the first non-blank line; each further one is a profile.
        assert_eq!(
            profiles.len() + 1,
            text.lines().filter(|l| !l.trim().is_empty()).count()
        );
        for p in &profiles {
            assert!(!p.name.is_empty() && !p.name.contains(char::is_whitespace));
        }
    }
});
