//! The `launchctl list` table: no panic, and rows written back as `PID<TAB>Status<TAB>Label`
//! read back the same.
#![no_main]

use adapters_macos::launchd::parse::parse_list_table;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(rows) = parse_list_table(&text) else {
        return;
    };
    let dash = |n: Option<String>| n.unwrap_or_else(|| "-".to_string());
    let mut written = String::from("PID\tStatus\tLabel\n");
    for row in &rows {
        assert_eq!(row.label, row.label.trim_end());
        // Any status, `i32::MIN` included, decodes without overflow.
        let _ = row.last_exit();
        written.push_str(&format!(
            "{}\t{}\t{}\n",
            dash(row.pid.map(|p| p.to_string())),
            dash(row.status.map(|s| s.to_string())),
            row.label
        ));
    }
    assert_eq!(
        parse_list_table(&written).as_ref(),
        Ok(&rows),
        "{written:?}"
    );
});
