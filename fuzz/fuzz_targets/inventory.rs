//! The inventory (TOML) from a string: no panic; an accepted inventory keeps the promises the
//! heal loop relies on; a rejected one points at a line of the text.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use central_core::Inventory;
use libfuzzer_sys::fuzz_target;
use process_manager::ServiceLabel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let inventory = match Inventory::parse("fuzz.toml", text) {
        Ok(inventory) => inventory,
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(
                e.line >= 1 && e.line <= lines,
                "line {} of {lines}: {e}",
                e.line
            );
            assert!(e.column >= 1, "{e}");
            let _ = e.to_string();
            return;
        }
    };
    assert!(!inventory.settings.interval.is_zero());
    assert!(inventory.settings.max_concurrency >= 1);

    // Labels: valid, unique, the substrate's name included.
    let mut names = BTreeSet::new();
    if let Some(sub) = &inventory.substrate {
        assert!(ServiceLabel::new(sub.name.as_str()).is_ok());
        names.insert(sub.name.as_str());
    }
    for svc in &inventory.services {
        assert!(
            ServiceLabel::new(svc.label.as_str()).is_ok(),
            "{}",
            svc.label
        );
        assert!(names.insert(svc.label.as_str()), "duplicate {}", svc.label);
        assert!(!svc.probes.is_empty(), "{} has no probe", svc.label);
        // The policy types hold their own invariants; the loader must not get around them.
        let heal = &svc.heal;
        assert!(heal.hysteresis.failures_to_down() >= 1 && heal.hysteresis.passes_to_up() >= 1);
        assert!(heal.breaker.threshold() >= 1);
        assert!((0.0..=1.0).contains(&heal.backoff.jitter()));
        assert!(heal.backoff.max() >= heal.backoff.initial());
    }

    // Dependencies: known, and no cycle (Kahn's algorithm over the services).
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for svc in &inventory.services {
        let mut deps = BTreeSet::new();
        for dep in &svc.depends_on {
            assert!(
                names.contains(dep.as_str()),
                "{} needs unknown {dep}",
                svc.label
            );
            assert_ne!(dep, &svc.label, "{} needs itself", svc.label);
            if inventory.substrate.as_ref().map(|s| &s.name) != Some(dep) {
                deps.insert(dep.as_str());
            }
        }
        waiting.insert(svc.label.as_str(), deps);
    }
    while let Some(ready) = waiting
        .iter()
        .find(|(_, deps)| deps.is_empty())
        .map(|(label, _)| *label)
    {
        waiting.remove(ready);
        for deps in waiting.values_mut() {
            deps.remove(ready);
        }
    }
    assert!(waiting.is_empty(), "a dependency cycle among {waiting:?}");
});
