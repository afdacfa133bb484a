//! A systemd unit file, as the audit reads installed definitions: no panic; a definition read as
//! a config keeps its label and its one command line; and a config, written as the adapter
//! writes units and read again, is the same config.
#![no_main]

use adapters_linux::fuzzing::render_unit;
use adapters_linux::unit_read::parse_unit;
use libfuzzer_sys::fuzz_target;
use process_manager::ServiceScope;

const LABEL: &str = "fuzz-unit";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let definition = parse_unit(LABEL, &text);
    assert_eq!(definition.label, LABEL);
    for scope in [ServiceScope::System, ServiceScope::User { uid: 1000 }] {
        let Ok(config) = definition.to_config(scope) else {
            continue;
        };
        let [argv] = definition.exec_start.as_slice() else {
            panic!(
                "a config from {} command lines",
                definition.exec_start.len()
            );
        };
        assert_eq!(config.label.as_str(), LABEL);
        assert_eq!(config.program.to_str(), Some(argv[0].as_str()));
        assert_eq!(config.args, argv[1..]);
        // Written then read gives back the same config.
        let Ok(unit) = render_unit(&config) else {
            continue;
        };
        let again = parse_unit(LABEL, &unit);
        assert_eq!(again.to_config(scope).as_ref(), Ok(&config), "{unit}");
    }
});
