//! Crate-private parsers for the fuzz targets in `fuzz/` (feature `fuzzing`); not API.
//!
//! The public parsers ([`crate::launchd::parse`], [`crate::colima::parse`]) are fuzzed
//! directly; this module only adds what the crate keeps to itself.

/// `launchctl`'s failure classification, by the variant's name (`NotFound`, `Other`, ...).
pub fn classify_launchctl_failure(code: Option<i32>, stderr: &str) -> String {
    format!("{:?}", crate::launchd::parse::classify(code, stderr))
}

/// The plist (XML) the adapter writes for `config` (no default account or PATH), for the plist
/// reader's written-then-read property; the error when the adapter refuses the config.
pub fn plist_xml(config: &process_manager::ServiceConfig) -> Result<Vec<u8>, String> {
    let defaults = crate::launchd::plist_gen::PlistDefaults {
        account: None,
        default_path: None,
        log_dir: None,
        env_exec: None,
    };
    let plist = crate::launchd::plist_gen::build_plist(config, &defaults)?;
    crate::launchd::plist_gen::to_xml(&plist)
}
