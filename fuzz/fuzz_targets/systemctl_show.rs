//! `systemctl show`: no panic; blocks written back as `Key=value` lines read back the same; and
//! each block the adapter accepts gives a status that agrees with its properties.
#![no_main]

use adapters_linux::fuzzing::{parse_show_blocks, read_show_block};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let blocks = parse_show_blocks(&text);
    let mut written = String::new();
    for block in &blocks {
        assert!(!block.is_empty(), "no empty block");
        for (key, value) in block {
            assert!(!key.contains('=') && !key.contains('\n') && !value.contains('\n'));
            written.push_str(&format!("{key}={value}\n"));
        }
        written.push('\n');

        let Ok(unit) = read_show_block(block) else {
            continue;
        };
        let prop = |k: &str| block.get(k).map(String::as_str);
        assert!(!unit.id.is_empty());
        assert_eq!(prop("Id"), Some(unit.id.as_str()));
        assert_eq!(unit.status.loaded, prop("LoadState") == Some("loaded"));
        if unit.not_found {
            assert!(!unit.status.loaded);
        }
        if unit.needs_enabling {
            assert_eq!(unit.status.enabled, Some(false));
        }
        if let Some(pid) = unit.status.pid {
            assert!(pid > 0);
            assert_eq!(prop("MainPID").and_then(|p| p.parse().ok()), Some(pid));
        }
    }
    // `str::lines` drops one `\r` before a newline, so a value that ends in `\r` (possible only
    // as the input's unterminated last line) is the one thing that cannot be written back.
    let ends_in_cr = blocks
        .iter()
        .flat_map(|b| b.values())
        .any(|v| v.ends_with('\r'));
    if !ends_in_cr {
        assert_eq!(parse_show_blocks(&written), blocks, "{written:?}");
    }
});
