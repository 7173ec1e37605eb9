//! Every checker's anomaly kinds: each name is distinct within its checker, documented in
//! docs/history.md, and has a meaning that `checkers::kind_meaning` finds under the checker's
//! name, so results, documents and reports speak one vocabulary.

use checkers::stream::AnomalyKind;
use checkers::{
    bank, convergence, counter, delivery, idempotency, linear, set, txn, unique, versioned_append,
};

/// Every checker with kinds that judges a history, by the name its results carry, with its kinds
/// and their meanings.
fn every_checker() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    vec![
        ("delivery", kinds::<delivery::Kind>()),
        ("set", kinds::<set::Kind>()),
        ("unique", kinds::<unique::Kind>()),
        ("idempotency", kinds::<idempotency::Kind>()),
        ("versioned-append", kinds::<versioned_append::Kind>()),
        ("counter", kinds::<counter::Kind>()),
        ("bank", kinds::<bank::Kind>()),
        ("list-append", kinds::<txn::Kind>()),
        ("rw-register", kinds::<txn::Kind>()),
        ("linearizable", kinds::<linear::Kind>()),
    ]
}

fn kinds<K: AnomalyKind>() -> Vec<(&'static str, &'static str)> {
    K::ALL.iter().map(|k| (k.name(), k.meaning())).collect()
}

/// [`every_checker`] and the convergence check (not a history checker: docs/testbed.md).
fn every_result_checker() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let mut all = every_checker();
    all.push((convergence::CHECKER, kinds::<convergence::Kind>()));
    all
}

#[test]
fn every_kind_has_a_distinct_name() {
    for (checker, kinds) in every_result_checker() {
        let kinds: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
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
        for (k, _) in kinds {
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

#[test]
fn the_list_covers_every_registered_checker() {
    let listed: Vec<&str> = every_checker().iter().map(|(c, _)| *c).collect();
    for name in checkers::CHECKER_NAMES {
        // `stats` summarises a history and reports no anomalies.
        if *name != "stats" {
            assert!(
                listed.contains(name),
                "checker {name:?} is missing from every_checker()"
            );
        }
    }
}

#[test]
fn every_kind_has_a_short_meaning_found_under_its_checker_name() {
    for (checker, kinds) in every_result_checker() {
        for (i, &(k, meaning)) in kinds.iter().enumerate() {
            assert!(
                !kinds[..i].iter().any(|(_, m)| *m == meaning),
                "{checker}: kind {k:?} has the meaning of another kind"
            );
            assert!(
                !meaning.trim().is_empty(),
                "{checker}: kind {k:?} has no meaning"
            );
            let words = meaning.split_whitespace().count();
            assert!(
                words <= 16,
                "{checker}: the meaning of {k:?} is {words} words, not one short sentence"
            );
            assert!(
                !meaning.ends_with('.') && !meaning.starts_with(char::is_uppercase),
                "{checker}: the meaning of {k:?} is a heading's phrase, lower case, no full stop"
            );
            assert_eq!(
                checkers::kind_meaning(checker, k),
                Some(meaning),
                "{checker}: kind {k:?} is not found under the checker's name"
            );
        }
    }
}

#[test]
fn a_kind_means_what_its_own_checker_says() {
    // `lost` and `unexpected` are kinds of several checkers, with different meanings.
    let delivery = checkers::kind_meaning("delivery", "lost").unwrap();
    let set = checkers::kind_meaning("set", "lost").unwrap();
    assert_ne!(delivery, set);
    assert!(delivery.contains("deliver"), "{delivery}");
    assert!(set.contains("final read"), "{set}");
    assert_ne!(
        checkers::kind_meaning("versioned-append", "unexpected"),
        checkers::kind_meaning("set", "unexpected")
    );
    // A kind another checker reports, a checker without kinds, and an unknown name find nothing.
    assert_eq!(checkers::kind_meaning("set", "G0"), None);
    assert_eq!(checkers::kind_meaning("stats", "lost"), None);
    assert_eq!(checkers::kind_meaning("no-such-checker", "lost"), None);
    assert!(checkers::kind_meaning("list-append", "G2-item-realtime").is_some());
}
