//! `colima status --json`: no panic; an address that is read is the VM's own (never loopback
//! or unspecified).
#![no_main]

use adapters_macos::colima::parse::parse_status_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(status) = parse_status_json(&text) else {
        return;
    };
    assert!(!text.trim().is_empty());
    if let Some(ip) = status.ip_address {
        assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
    }
});
