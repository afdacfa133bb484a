//! The workspace's shape (ARCHITECTURE.md): small source files along real seams. A file whose
//! non-test part grows past the limit is split where its concerns part, not by line count.

use std::fs;
use std::path::{Path, PathBuf};

use workspace_tests::repo_root;

/// The most lines of non-test code one source file may hold.
const MAX_LINES: usize = 800;

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            // Test files and test data are exempt; so is anything built.
            if !matches!(
                name.to_str(),
                Some("tests" | "target" | "fuzz" | "examples")
            ) {
                rust_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") && name.to_str() != Some("tests.rs") {
            out.push(path);
        }
    }
}

/// Lines before a file's `#[cfg(test)]` module (the rest is its unit tests).
fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .count()
}

#[test]
fn no_source_file_is_over_the_limit_outside_its_tests() {
    let mut files = Vec::new();
    rust_sources(&repo_root().join("crates"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut over: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = code_lines(&fs::read_to_string(f).unwrap());
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    over.sort();
    assert!(
        over.is_empty(),
        "split these along their seams (limit {MAX_LINES}):\n  {}",
        over.join("\n  ")
    );
}

#[test]
fn test_modules_do_not_count() {
    assert_eq!(code_lines("a\nb\n#[cfg(test)]\nmod tests {\nc\n}\n"), 2);
    assert_eq!(code_lines("a\nb\n"), 2);
}
