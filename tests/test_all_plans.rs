//! Every plan shipped under plans/ loads the way `faultline run --plan` and `faultline test-all`
//! load it, names a workload its system has, is named after its file, and gives its faults
//! room to happen.

use faultline::test_all::{expand_patterns, load_plans, TestAllOptions};
use std::path::Path;

#[test]
fn every_shipped_plan_loads_validates_and_has_room_for_its_faults() {
    let pattern = format!("{}/plans/**/*.toml", env!("CARGO_MANIFEST_DIR"));
    let files = expand_patterns(std::slice::from_ref(&pattern)).unwrap();
    let opts = TestAllOptions::default();
    let entries = load_plans(&files, &opts);
    assert!(
        entries.len() >= 12,
        "only {} plans in plans/",
        entries.len()
    );
    let mut systems = std::collections::BTreeSet::new();
    for e in &entries {
        let file = e.file.display();
        let plan = e
            .plan
            .as_ref()
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        // The same file through `faultline run`'s own loader.
        let pf = faultline::plan::PlanFile::load(&e.file).unwrap();
        let mut p = faultline::plan::Plan::default();
        pf.apply(&mut p, &file.to_string()).unwrap();
        p.validate().unwrap_or_else(|err| panic!("{file}: {err}"));
        assert!(pf.seed.is_none(), "{file}: plans leave the seed to the run");
        assert!(
            pf.store.is_none(),
            "{file}: plans leave the store to the run"
        );
        let stem = Path::new(&e.file).file_stem().unwrap().to_string_lossy();
        assert_eq!(plan.name, stem, "{file}: name the plan after its file");
        assert!(e.notes.is_empty(), "{file}: {:?}", e.notes);
        systems.insert(plan.system.clone());
    }
    for s in [
        "etcd",
        "redis",
        "nats",
        "zookeeper",
        "postgres",
        "memory",
        "memory-stale",
    ] {
        assert!(systems.contains(s), "no plan for {s}: {systems:?}");
    }
}
