//! Crate-private parsers for the fuzz targets in `fuzz/` (feature `fuzzing`); not API.
//!
//! The public parsers ([`crate::launchd::parse`], [`crate::colima::parse`]) are fuzzed
//! directly; this module only adds what the crate keeps to itself.

/// `launchctl`'s failure classification, by the variant's name (`NotFound`, `Other`, ...).
pub fn classify_launchctl_failure(code: Option<i32>, stderr: &str) -> String {
    format!("{:?}", crate::launchd::parse::classify(code, stderr))
}
