//! A launchd plist (XML or binary), as the audit reads installed definitions: no panic; a
//! definition read as a config keeps its label and argv; and a config, written as the adapter
//! writes plists (which makes its defaults explicit: `ThrottleInterval`, hardening...) and read
//! again, is written the same way again: one round reaches the fixed point.
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
        // Written, read and written again gives the same bytes; reading those gives the same
        // config as the first read of the adapter's own plist.
        let Ok(xml) = plist_xml(&config) else {
            continue;
        };
        let again = parse_plist(&xml)
            .expect("the adapter's own plist reads back")
            .to_config(scope)
            .expect("the adapter's own plist is a config");
        let xml2 = plist_xml(&again).expect("a config read from the adapter's plist writes");
        assert_eq!(
            String::from_utf8_lossy(&xml),
            String::from_utf8_lossy(&xml2)
        );
        let third = parse_plist(&xml2).unwrap().to_config(scope).unwrap();
        assert_eq!(third, again);
    }
});
