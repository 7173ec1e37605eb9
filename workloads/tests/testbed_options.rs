//! The testbed workloads' client options, as a plan's `[client]` table gives them. (Kept out of
//! the client's source file, which the testbed's own tests include by path.)

use serde_json::json;
use std::time::Duration;
use workloads::clients::testbed::{TestbedOptions, OPTION_NAMES};

#[test]
fn client_options_from_a_plan_table_parse_or_name_the_problem() {
    let mut o = TestbedOptions::default();
    o.apply("ack-stall", &json!("1300ms")).unwrap();
    o.apply("ack-stall-probability", &json!(0.1)).unwrap();
    o.apply("drain-wait", &json!(4000)).unwrap();
    o.apply("lease-stall", &json!("2s")).unwrap();
    o.apply("churn-every", &json!(3)).unwrap();
    o.apply("commit-offsets", &json!(false)).unwrap();
    assert_eq!(o.ack_stall.duration, Duration::from_millis(1300));
    assert_eq!(o.ack_stall.probability, 0.1);
    assert_eq!(o.drain_wait, Duration::from_secs(4));
    assert_eq!(o.lease_stall.duration, Duration::from_secs(2));
    assert_eq!((o.churn_every, o.commit_offsets), (3, false));
    for (key, bad) in [
        ("ack-stall-probability", json!(1.5)),
        ("ack-stall", json!("soon")),
        ("churn-every", json!(-1)),
        ("guarantee", json!("maybe-once")),
    ] {
        assert!(o.apply(key, &bad).is_err(), "{key} = {bad}");
    }
    let e = o.apply("ack-stal", &json!(1)).unwrap_err();
    assert!(e.contains("ack-stal") && e.contains("ack-stall"), "{e}");
}

#[test]
fn every_option_name_is_accepted() {
    let mut o = TestbedOptions::default();
    for name in OPTION_NAMES {
        let v = match *name {
            "guarantee" => json!("at-least-once"),
            "commit-offsets" => json!(true),
            n if n.ends_with("probability") => json!(0.5),
            n if n.ends_with("stall") || n == "drain-wait" => json!("1s"),
            _ => json!(2),
        };
        o.apply(name, &v).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
