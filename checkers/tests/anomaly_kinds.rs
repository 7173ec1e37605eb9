//! Every checker's anomaly kinds: each name is distinct within its checker and documented in
//! docs/history.md, so results, documents and reports speak one vocabulary.

use checkers::stream::AnomalyKind;
use checkers::{bank, counter, delivery, idempotency, linear, set, txn, unique, versioned_append};

fn names<K: AnomalyKind>() -> Vec<&'static str> {
    K::ALL.iter().map(|k| k.name()).collect()
}

fn every_checker() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("delivery", names::<delivery::Kind>()),
        ("set", names::<set::Kind>()),
        ("unique", names::<unique::Kind>()),
        ("idempotency", names::<idempotency::Kind>()),
        ("versioned-append", names::<versioned_append::Kind>()),
        ("counter", names::<counter::Kind>()),
        ("bank", names::<bank::Kind>()),
        ("list-append and rw-register", names::<txn::Kind>()),
        ("linearizable", names::<linear::Kind>()),
    ]
}

#[test]
fn every_kind_has_a_distinct_name() {
    for (checker, kinds) in every_checker() {
        assert!(!kinds.is_empty(), "{checker} lists no kinds");
        for (i, k) in kinds.iter().enumerate() {
            assert!(
                !kinds[..i].contains(k),
                "{checker}: kind {k:?} is listed twice (two variants with one name?)"
            );
            assert!(
                !k.is_empty() && !k.contains(char::is_whitespace),
                "{checker}: kind {k:?} is not a plain name"
            );
        }
    }
}

#[test]
fn every_kind_is_documented_in_history_md() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/history.md");
    let doc = std::fs::read_to_string(path).expect("docs/history.md is readable");
    let listed = |name: &str| doc.contains(&format!("`{name}`"));
    for (checker, kinds) in every_checker() {
        for k in kinds {
            // The real-time variants of the transactional cycles are documented together, as
            // `...-realtime` next to each cycle's own row.
            let documented = match k.strip_suffix("-realtime") {
                Some(base) => listed(base) && listed("...-realtime"),
                None => listed(k),
            };
            assert!(
                documented,
                "{checker}: anomaly kind `{k}` is not in docs/history.md"
            );
        }
    }
}
