//! `colima status` in its log formats (and the stderr checks): no panic; a driver is only read
//! from the `is running` line; the status it gives has only the VM's own address, taken from
//! the `address` message.
#![no_main]

use std::net::IpAddr;

use adapters_macos::colima::parse::{parse_status_log, rejects_json_flag, says_not_running};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = says_not_running(&text);
    assert_eq!(
        rejects_json_flag(&text),
        text.contains("unknown flag: --json")
    );
    let log = parse_status_log(&text);
    if log.driver.is_some() {
        assert!(log.running, "{log:?}");
    }
    let status = log.to_status();
    assert_eq!(status.driver, log.driver);
    if let Some(ip) = status.ip_address {
        assert!(!ip.is_loopback() && !ip.is_unspecified(), "{ip}");
        assert_eq!(
            log.fields
                .get("address")
                .and_then(|a| a.parse::<IpAddr>().ok()),
            Some(ip)
        );
    }
});
