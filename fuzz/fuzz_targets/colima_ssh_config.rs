//! `colima ssh-config`: no panic; option keys are single words; a config that parses has the
//! first `Host`, `Hostname` and `Port` it was given.
#![no_main]

use adapters_macos::colima::parse::{parse_ssh_config, parse_ssh_options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let options = parse_ssh_options(&text);
    for (key, _) in &options {
        assert!(
            !key.contains(|c: char| c.is_whitespace() || c == '='),
            "{key:?}"
        );
    }
    let Ok(config) = parse_ssh_config(&text) else {
        return;
    };
    let first = |name: &str| {
        options
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(first("Host"), Some(config.host.as_str()));
    assert_eq!(first("Hostname"), Some(config.hostname.as_str()));
    assert_eq!(
        first("Port").and_then(|p| p.parse::<u16>().ok()),
        Some(config.port)
    );
    assert_eq!(first("User"), config.user.as_deref());
});
