//! A launchd plist (XML or binary), as the audit reads installed definitions: no panic; a
//! definition read as a config keeps its label and argv; and a config, written as the adapter
//! writes plists and read again, is the same config.
#![no_main]

use adapters_macos::fuzzing::plist_xml;
use adapters_macos::launchd::plist_read::parse_plist;
use libfuzzer_sys::fuzz_target;
use process_manager::ServiceScope;

fuzz_target!(|data: &[u8]| {
    let Ok(definition) = parse_plist(data) else {
        return;
    };
    for scope in [ServiceScope::System, ServiceScope::Gui { uid: 501 }] {
        let Ok(config) = definition.to_config(scope) else {
            continue;
        };
        assert_eq!(config.label.as_str(), definition.label);
        assert_eq!(config.program.to_str(), definition.executable());
        assert!(config
            .args
            .iter()
            .eq(definition.program_arguments.iter().skip(1)));
        // Written then read gives back the same config.
        let Ok(xml) = plist_xml(&config) else {
            continue;
        };
        let again = parse_plist(&xml).expect("the adapter's own plist reads back");
        assert_eq!(
            again.to_config(scope).as_ref(),
            Ok(&config),
            "{}",
            String::from_utf8_lossy(&xml)
        );
    }
});
