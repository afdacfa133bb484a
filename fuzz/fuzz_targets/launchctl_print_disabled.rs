//! `launchctl print-disabled <domain>`: no panic, and the map written back in launchd's newer
//! dialect (`"label" => disabled|enabled`) reads back the same.
#![no_main]

use adapters_macos::launchd::parse::parse_print_disabled;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(map) = parse_print_disabled(&text) else {
        return;
    };
    let mut written = String::from("disabled services = {\n");
    for (label, disabled) in &map {
        assert!(
            !label.starts_with('"') && !label.ends_with('"'),
            "quotes are removed: {label:?}"
        );
        let word = if *disabled { "disabled" } else { "enabled" };
        written.push_str(&format!("\t\"{label}\" => {word}\n"));
    }
    written.push_str("}\n");
    assert_eq!(
        parse_print_disabled(&written).as_ref(),
        Ok(&map),
        "{written:?}"
    );
});
