//! The delivery checker, scenario by scenario (docs/scenarios.md rows B1, B3, B4, B7, L1, L2, L4,
//! L9, L10, I3, I8), each with the bug present and absent, then the guarantee table.

mod stream_support;
use serde_json::json;
use stream_support::{anomaly, check, check_err, outcome};

fn delivery(opts: &[(&str, &str)], fixture: &str) -> String {
    outcome(&check("delivery", opts, fixture))
}

const EXACTLY: &[(&str, &str)] = &[];
const AT_LEAST: &[(&str, &str)] = &[("guarantee", "at-least-once")];
const AT_MOST: &[(&str, &str)] = &[("guarantee", "at-most-once")];

#[test]
fn l1_baseline_in_order_is_valid_and_reversed_offsets_are_reordered() {
    let fixture = |consumed: &str| {
        format!(
            r#"
            0 invoke produce {{"id":1,"partition":0}}
            0 ok produce {{"id":1,"partition":0,"offset":0}}
            0 invoke produce {{"id":2,"partition":0}}
            0 ok produce {{"id":2,"partition":0,"offset":1}}
            1 invoke consume
            1 ok consume {consumed}
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    let in_order = r#"[{"id":1,"partition":0,"offset":0},{"id":2,"partition":0,"offset":1}]"#;
    let reversed = r#"[{"id":2,"partition":0,"offset":1},{"id":1,"partition":0,"offset":0}]"#;
    assert_eq!(delivery(EXACTLY, &fixture(in_order)), "valid");
    let r = check("delivery", EXACTLY, &fixture(reversed));
    assert_eq!(outcome(&r), "invalid reordered");
    assert_eq!(anomaly(&r, "reordered").ops, [5]);
}

#[test]
fn b1_double_delivery_on_consumer_timeout_is_a_double_commit() {
    let fixture = |late_ack: &str| {
        format!(
            r#"
            0 invoke produce {{"id":"m1"}}
            0 ok produce
            1 invoke consume
            1 ok consume ["m1"]
            # consumer 1 stalls past its lease; the broker hands m1 to consumer 2
            2 invoke consume
            2 ok consume ["m1"]
            2 invoke ack "m1"
            2 ok ack
            1 invoke ack "m1"
            {late_ack}
            3 invoke drain
            3 ok drain []
            "#
        )
    };
    let r = check("delivery", EXACTLY, &fixture("1 ok ack"));
    assert_eq!(outcome(&r), "invalid double-committed");
    assert_eq!(anomaly(&r, "double-committed").ops, [7, 9]);
    // Under at-least-once two completions are the documented price, reported only.
    assert_eq!(
        delivery(AT_LEAST, &fixture("1 ok ack")),
        "valid | reported double-committed"
    );
    // Fixed: the late ack is fenced. The redelivery after the lease expired is no duplicate.
    assert_eq!(
        delivery(EXACTLY, &fixture("1 fail ack e=lease-expired")),
        "valid"
    );
}

#[test]
fn b3_retries_beyond_the_maximum_without_dead_lettering() {
    let attempts = |n: usize| {
        (1..=n)
            .map(|i| {
                format!(
                    "1 invoke consume\n1 ok consume [{{\"id\":\"m1\",\"delivery\":{i}}}]\n1 invoke nack \"m1\"\n1 ok nack\n"
                )
            })
            .collect::<String>()
    };
    let fixture = |n: usize, dead_letter: &str| {
        format!(
            "0 invoke produce {{\"id\":\"m1\"}}\n0 ok produce\n{}{dead_letter}\n2 invoke drain\n2 ok drain []\n",
            attempts(n)
        )
    };
    let dlq = "3 invoke dead-letter\n3 ok dead-letter [\"m1\"]";
    let retries = &[("max-retries", "2")];
    let r = check("delivery", retries, &fixture(4, ""));
    assert_eq!(outcome(&r), "invalid retries-exceeded,stranded");
    assert_eq!(anomaly(&r, "retries-exceeded").ops, [3, 7, 11, 15]);
    assert_eq!(
        outcome(&check("delivery", retries, &fixture(3, ""))),
        "invalid stranded"
    );
    assert_eq!(delivery(retries, &fixture(3, dlq)), "valid");
    // The broker's own delivery count reveals deliveries to consumers that then timed out.
    let hidden = r#"
        0 invoke produce {"id":"m1"}
        0 ok produce
        1 invoke consume
        1 ok consume [{"id":"m1","delivery":5}]
        2 invoke dead-letter
        2 ok dead-letter ["m1"]
        3 invoke drain
        3 ok drain []
    "#;
    assert_eq!(delivery(retries, hidden), "invalid retries-exceeded");
    assert_eq!(delivery(&[("max-retries", "4")], hidden), "valid");
}

#[test]
fn b4_lost_event_unless_dead_lettered() {
    let fixture = |extra: &str| {
        format!(
            r#"
            0 invoke produce {{"id":"e1"}}
            0 ok produce
            0 invoke produce {{"id":"e2"}}
            0 ok produce
            n info start-kill {{"node":"dispatcher"}}
            n info stop-kill {{"node":"dispatcher"}}
            {extra}
            1 invoke drain
            1 ok drain ["e1"]
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    let r = check("delivery", EXACTLY, &fixture(""));
    assert_eq!(outcome(&r), "invalid lost");
    let lost = anomaly(&r, "lost");
    assert_eq!(lost.ops, [2, 3, 9]);
    assert_eq!(lost.data["id"], json!("e2"));
    assert_eq!(lost.data["phase"], json!("before"));
    let dlq = "2 invoke dead-letter\n2 ok dead-letter [\"e2\"]";
    assert_eq!(delivery(EXACTLY, &fixture(dlq)), "valid");
}

#[test]
fn b7_outbox_redelivering_already_dispatched_events_is_duplication() {
    let fixture = |retry: &str| {
        format!(
            r#"
            0 invoke produce {{"id":"e1"}}
            0 ok produce
            0 invoke produce {{"id":"e2"}}
            0 ok produce
            0 invoke produce {{"id":"e3"}}
            0 ok produce
            1 invoke consume
            1 ok consume ["e1","e2"]
            # dispatch of e3 failed midway; the retry sends {retry}
            1 invoke consume
            1 ok consume {retry}
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    let r = check("delivery", EXACTLY, &fixture(r#"["e1","e2","e3"]"#));
    assert_eq!(outcome(&r), "invalid duplicated");
    assert_eq!(r.details["counts"]["duplicated"], json!(2));
    let dup = anomaly(&r, "duplicated");
    assert_eq!(dup.ops, [7, 9]);
    assert_eq!(dup.data["consumers"], json!([1, 1]));
    assert_eq!(delivery(EXACTLY, &fixture(r#"["e3"]"#)), "valid");
}

#[test]
fn l2_concurrent_producers_offsets_unique_increasing_and_gap_free() {
    let fixture = |a: u64, b: u64| {
        format!(
            r#"
            0 invoke produce {{"id":"a","partition":0}}
            1 invoke produce {{"id":"b","partition":0}}
            0 ok produce {{"id":"a","partition":0,"offset":{a}}}
            1 ok produce {{"id":"b","partition":0,"offset":{b}}}
            2 invoke drain
            2 ok drain [{{"id":"a","partition":0,"offset":{a}}},{{"id":"b","partition":0,"offset":{b}}}]
            2 invoke drain
            2 ok drain []
            "#
        )
    };
    assert_eq!(delivery(EXACTLY, &fixture(0, 1)), "valid");
    // Concurrent produces may take either order.
    assert_eq!(delivery(EXACTLY, &fixture(1, 0)), "invalid reordered");
    assert_eq!(delivery(EXACTLY, &fixture(0, 0)), "invalid offset-conflict");
    let r = check("delivery", EXACTLY, &fixture(0, 2));
    assert_eq!(outcome(&r), "invalid offset-gap");
    assert!(anomaly(&r, "offset-gap")
        .explanation
        .starts_with("Offset 1 of partition 0"));
    // Sequential produces: the later one must get the higher offset.
    let sequential = r#"
        0 invoke produce {"id":"a","partition":0}
        0 ok produce {"id":"a","partition":0,"offset":5}
        1 invoke produce {"id":"b","partition":0}
        1 ok produce {"id":"b","partition":0,"offset":4}
        2 invoke drain
        2 ok drain [{"id":"b","partition":0,"offset":4},{"id":"a","partition":0,"offset":5}]
        2 invoke drain
        2 ok drain []
    "#;
    let r = check("delivery", EXACTLY, sequential);
    assert_eq!(outcome(&r), "invalid offset-order");
    assert_eq!(anomaly(&r, "offset-order").ops, [1, 2, 3]);
}

#[test]
fn l4_l10_acknowledged_messages_lost_in_a_crash_are_broken_down_by_fault() {
    let fixture = |drained: &str| {
        format!(
            r#"
            0 invoke produce 1
            0 ok produce
            n info start-kill {{"node":"n1"}}
            0 invoke produce 2
            0 ok produce
            n info stop-kill {{"node":"n1"}}
            0 invoke produce 3
            0 ok produce
            1 invoke drain
            1 ok drain {drained}
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    let r = check("delivery", EXACTLY, &fixture("[1]"));
    assert_eq!(outcome(&r), "invalid lost");
    assert_eq!(
        r.details["lost_by_phase"],
        json!({"after kill": 1, "during kill": 1})
    );
    assert_eq!(r.details["counts"]["lost"], json!(2));
    assert!(
        r.summary
            .contains("Lost by produce time: 1 after kill, 1 during kill."),
        "{}",
        r.summary
    );
    assert_eq!(delivery(EXACTLY, &fixture("[1,2,3]")), "valid");
}

#[test]
fn l9_committed_consumer_group_offsets_never_regress() {
    let fixture = |fetched: u64, recommitted: u64| {
        format!(
            r#"
            0 invoke produce 1
            0 ok produce
            1 invoke commit-offset {{"group":"g","partition":0,"offset":5}}
            1 ok commit-offset
            n info start-partition
            n info stop-partition
            2 invoke fetch-offset {{"group":"g","partition":0}}
            2 ok fetch-offset {{"group":"g","partition":0,"offset":{fetched}}}
            2 invoke commit-offset {{"group":"g","partition":0,"offset":{recommitted}}}
            2 ok commit-offset
            3 invoke drain
            3 ok drain [1]
            3 invoke drain
            3 ok drain []
            "#
        )
    };
    assert_eq!(delivery(EXACTLY, &fixture(5, 6)), "valid");
    let r = check("delivery", EXACTLY, &fixture(3, 6));
    assert_eq!(outcome(&r), "invalid offset-regression");
    assert_eq!(anomaly(&r, "offset-regression").ops, [3, 6, 7]);
    assert_eq!(r.details["counts"]["offset-regression"], json!(1));
    let r = check("delivery", EXACTLY, &fixture(5, 4));
    assert_eq!(anomaly(&r, "offset-regression").ops, [3, 8, 9]);
}

#[test]
fn i3_per_sender_order_is_kept() {
    let fixture = |consumed: &str| {
        format!(
            r#"
            0 invoke produce "s0-1"
            1 invoke produce "s1-1"
            0 ok produce
            0 invoke produce "s0-2"
            1 ok produce
            0 ok produce
            2 invoke consume
            2 ok consume {consumed}
            2 invoke drain
            2 ok drain []
            "#
        )
    };
    // s1-1 is concurrent with both of s0's messages: any interleaving of it is fine.
    assert_eq!(
        delivery(EXACTLY, &fixture(r#"["s0-1","s0-2","s1-1"]"#)),
        "valid"
    );
    assert_eq!(
        delivery(EXACTLY, &fixture(r#"["s1-1","s0-1","s0-2"]"#)),
        "valid"
    );
    let r = check("delivery", EXACTLY, &fixture(r#"["s0-2","s1-1","s0-1"]"#));
    assert_eq!(outcome(&r), "invalid reordered");
    let a = anomaly(&r, "reordered");
    assert_eq!(a.data["id"], json!("s0-1"));
    assert_eq!(a.data["after"], json!("s0-2"));
}

#[test]
fn i8_publish_failing_after_commit_must_still_deliver_exactly_once() {
    let fixture = |consumed: &str| {
        format!(
            r#"
            0 invoke produce "order-1"
            0 ok produce
            n info start-partition {{"outbox":["broker"]}}
            n info stop-partition
            1 invoke consume
            1 ok consume {consumed}
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    assert_eq!(delivery(EXACTLY, &fixture(r#"["order-1"]"#)), "valid");
    assert_eq!(delivery(EXACTLY, &fixture("[]")), "invalid lost");
    assert_eq!(
        delivery(EXACTLY, &fixture(r#"["order-1","order-1"]"#)),
        "invalid duplicated"
    );
}

const DUPLICATE: &str = r#"
    0 invoke produce "m1"
    0 ok produce
    1 invoke consume
    1 ok consume ["m1"]
    2 invoke consume
    2 ok consume ["m1"]
    1 invoke drain
    1 ok drain []
"#;

const LOSS: &str = r#"
    0 invoke produce "m1"
    0 ok produce
    0 invoke produce "m2"
    0 ok produce
    1 invoke drain
    1 ok drain ["m1"]
    1 invoke drain
    1 ok drain []
"#;

#[test]
fn duplicates_count_under_exactly_and_at_most_once_only() {
    assert_eq!(delivery(EXACTLY, DUPLICATE), "invalid duplicated");
    assert_eq!(delivery(AT_MOST, DUPLICATE), "invalid duplicated");
    let r = check("delivery", AT_LEAST, DUPLICATE);
    assert_eq!(outcome(&r), "valid | reported duplicated");
    assert!(
        r.summary.contains("delivery under at-least-once"),
        "{}",
        r.summary
    );
    assert!(
        r.summary.contains("reported only: duplicated 1"),
        "{}",
        r.summary
    );
    assert_eq!(r.details["guarantee"], json!("at-least-once"));
}

#[test]
fn loss_counts_under_at_least_and_exactly_once_only() {
    assert_eq!(delivery(EXACTLY, LOSS), "invalid lost");
    assert_eq!(delivery(AT_LEAST, LOSS), "invalid lost");
    let r = check("delivery", AT_MOST, LOSS);
    assert_eq!(outcome(&r), "valid | reported lost");
    assert!(
        r.summary
            .contains("Counted under at-most-once: duplicated,"),
        "{}",
        r.summary
    );
}

#[test]
fn indeterminate_produces_are_never_lost_and_failed_ones_must_not_arrive() {
    let fixture = |second: &str, drained: &str| {
        format!(
            r#"
            0 invoke produce "m1"
            {second}
            1 invoke produce "m2"
            1 ok produce
            2 invoke drain
            2 ok drain {drained}
            2 invoke drain
            2 ok drain []
            "#
        )
    };
    assert_eq!(
        delivery(EXACTLY, &fixture("0 info produce e=timed-out", r#"["m2"]"#)),
        "valid"
    );
    assert_eq!(
        delivery(
            EXACTLY,
            &fixture("0 info produce e=timed-out", r#"["m1","m2"]"#)
        ),
        "valid | reported recovered"
    );
    assert_eq!(
        delivery(EXACTLY, &fixture("0 fail produce e=rejected", r#"["m2"]"#)),
        "valid"
    );
    assert_eq!(
        delivery(
            AT_MOST,
            &fixture("0 fail produce e=rejected", r#"["m1","m2"]"#)
        ),
        "invalid failed-but-delivered"
    );
    // A produce the history never completes is indeterminate too.
    assert_eq!(delivery(EXACTLY, &fixture("", r#"["m2"]"#)), "valid");
}

#[test]
fn messages_from_nowhere_are_unexpected() {
    let r = check(
        "delivery",
        EXACTLY,
        r#"
        1 invoke consume
        1 ok consume ["ghost"]
        0 invoke produce "ghost2"
        0 ok produce
        1 invoke drain
        1 ok drain ["ghost2"]
        1 invoke drain
        1 ok drain []
        "#,
    );
    assert_eq!(outcome(&r), "invalid unexpected");
    assert_eq!(anomaly(&r, "unexpected").ops, [1]);
}

#[test]
fn with_acks_a_redelivery_after_the_ack_is_a_duplicate_and_an_unacked_one_is_stranded() {
    let fixture = |tail: &str| {
        format!(
            r#"
            0 invoke produce "m1"
            0 ok produce
            1 invoke consume
            1 ok consume ["m1"]
            1 invoke ack "m1"
            1 ok ack
            {tail}
            2 invoke drain
            2 ok drain []
            "#
        )
    };
    let r = check(
        "delivery",
        EXACTLY,
        &fixture("2 invoke consume\n2 ok consume [\"m1\"]"),
    );
    assert_eq!(outcome(&r), "invalid duplicated");
    assert_eq!(
        anomaly(&r, "duplicated").data["after_ack"],
        json!([false, true])
    );
    assert_eq!(delivery(EXACTLY, &fixture("")), "valid");
    let unacked = r#"
        0 invoke produce "m1"
        0 ok produce
        1 invoke consume
        1 ok consume ["m1"]
        2 invoke ack "m0"
        2 ok ack
        2 invoke drain
        2 ok drain []
    "#;
    assert_eq!(delivery(AT_LEAST, unacked), "invalid stranded,unexpected");
    assert_eq!(
        delivery(AT_MOST, unacked),
        "invalid unexpected | reported stranded"
    );
}

#[test]
fn without_a_complete_drain_loss_is_unknown_not_guessed() {
    let no_drain = r#"
        0 invoke produce "m1"
        0 ok produce
        0 invoke produce "m2"
        0 ok produce
        1 invoke consume
        1 ok consume ["m1"]
    "#;
    let r = check("delivery", AT_LEAST, no_drain);
    assert_eq!(outcome(&r), "unknown");
    let reason = r.unknown_reason.as_deref().unwrap();
    assert!(
        reason.contains("1 message was acknowledged but never delivered"),
        "{reason}"
    );
    assert!(reason.contains("no final drain"), "{reason}");
    assert_eq!(delivery(AT_MOST, no_drain), "valid");
    // A drain per partition completes only when every partition came back empty.
    let per_partition = |drains: &str| {
        format!(
            r#"
            0 invoke produce {{"id":"a","partition":0}}
            0 ok produce
            0 invoke produce {{"id":"b","partition":1}}
            0 ok produce
            1 invoke drain {{"partition":0}}
            1 ok drain ["a"]
            {drains}
            "#
        )
    };
    let p0 = "1 invoke drain {\"partition\":0}\n1 ok drain []";
    let p1 = "1 invoke drain {\"partition\":1}\n1 ok drain []";
    assert_eq!(delivery(EXACTLY, &per_partition(p0)), "unknown");
    assert_eq!(
        delivery(EXACTLY, &per_partition(&format!("{p0}\n{p1}"))),
        "invalid lost"
    );
}

#[test]
fn bad_values_and_options_are_errors_naming_the_line() {
    let err = check_err(
        "delivery",
        EXACTLY,
        "0 invoke produce {\"partition\":0}\n0 ok produce",
    );
    assert!(
        err.starts_with("line 1: invoke \"produce\" has a value of the wrong shape (no id)"),
        "{err}"
    );
    let err = check_err("delivery", EXACTLY, "0 invoke produce 1\n0 ok produce\n1 invoke consume\n1 ok consume [{\"id\":1,\"offset\":-1}]");
    assert!(
        err.starts_with("line 4: ok \"consume\" has a value of the wrong shape"),
        "{err}"
    );
    let err = check_err("delivery", EXACTLY, "0 invoke produce 1\n0 ok produce 2");
    assert!(err.contains("acknowledges message"), "{err}");
    let err = check_err("delivery", EXACTLY, "0 ok ack");
    assert!(err.contains("has no open invocation"), "{err}");
    let opts = stream_support::options(&[("guarantee", "sometimes")]);
    let err = checkers::by_name("delivery", &opts).err().unwrap();
    assert!(
        err.contains("expected one of: at-most-once, at-least-once, exactly-once"),
        "{err}"
    );
}

#[test]
fn a_history_without_delivery_ops_is_unknown() {
    let r = check("delivery", EXACTLY, "0 invoke read\n0 ok read 1");
    assert_eq!(outcome(&r), "unknown");
    assert!(r.summary.contains("Ignored ops: read (1)"), "{}", r.summary);
}

#[test]
fn a_producer_retry_stored_twice_is_one_duplicate() {
    let retry = r#"
        0 invoke produce {"id":"a","partition":0}
        0 info produce e=timed-out
        1 invoke produce {"id":"a","partition":0}
        1 ok produce {"id":"a","partition":0,"offset":1}
        2 invoke drain
        2 ok drain [{"id":"a","partition":0,"offset":0},{"id":"a","partition":0,"offset":1}]
        2 invoke drain
        2 ok drain []
    "#;
    let r = check("delivery", EXACTLY, retry);
    assert_eq!(outcome(&r), "invalid duplicated");
    assert_eq!(r.details["counts"]["duplicated"], json!(1));
    assert_eq!(anomaly(&r, "duplicated").data["offsets"], json!([1, 0]));
    assert_eq!(delivery(AT_LEAST, retry), "valid | reported duplicated");
}

#[test]
fn l3_a_refused_write_is_a_clear_failure_and_never_delivered() {
    let fixture = |drained: &str| {
        format!(
            r#"
            0 invoke produce 1
            0 ok produce
            n info start-disk-full {{"node":"n1"}}
            0 invoke produce 2
            0 fail produce e=disk-full
            n info stop-disk-full
            1 invoke drain
            1 ok drain {drained}
            1 invoke drain
            1 ok drain []
            "#
        )
    };
    assert_eq!(delivery(EXACTLY, &fixture("[1]")), "valid");
    assert_eq!(
        delivery(EXACTLY, &fixture("[1,2]")),
        "invalid failed-but-delivered"
    );
    assert_eq!(delivery(EXACTLY, &fixture("[]")), "invalid lost");
}

#[test]
fn files_stream_when_they_are_jsonl_and_fall_back_otherwise() {
    use checkers::stream::check_jsonl_path;
    let dir = std::env::temp_dir().join(format!("faultline-delivery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("h.jsonl");
    std::fs::write(&jsonl, stream_support::jsonl(LOSS)).unwrap();
    let opts = checkers::CheckOptions::default();
    let r = check_jsonl_path(&jsonl, "delivery", &opts)
        .unwrap()
        .unwrap();
    assert_eq!(outcome(&r), "invalid lost");
    assert!(
        check_jsonl_path(&jsonl, "stats", &opts).is_none(),
        "stats does not stream"
    );
    let edn = dir.join("h.edn");
    std::fs::write(&edn, "{:type :invoke, :f :enqueue, :value 1, :process 0}\n").unwrap();
    assert!(
        check_jsonl_path(&edn, "delivery", &opts).is_none(),
        "EDN is read whole"
    );
    let broken = dir.join("broken.jsonl");
    std::fs::write(
        &broken,
        "{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"produce\",\"value\":{}}\n",
    )
    .unwrap();
    let err = check_jsonl_path(&broken, "delivery", &opts)
        .unwrap()
        .unwrap_err();
    assert!(
        err.starts_with(&format!("{}: line 1: ", broken.display())),
        "{err}"
    );
    let missing = check_jsonl_path(&dir.join("nope.jsonl"), "delivery", &opts)
        .unwrap()
        .unwrap_err();
    assert!(missing.contains("cannot read"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_later_redelivery_does_not_excuse_an_earlier_reorder() {
    // m1 was acknowledged before m2 was produced, yet consumer 2's first delivery of m1 came
    // after m2's, and the broker counted it as delivery 1: a real reorder. m1 was redelivered
    // afterwards (delivery 2), which cannot explain what came before it.
    let fixture = |late: &str| {
        format!(
            r#"
            0 invoke produce "m1"
            0 ok produce
            0 invoke produce "m2"
            0 ok produce
            2 invoke consume
            2 ok consume [{{"id":"m2","delivery":1}}]
            2 invoke consume
            2 ok consume [{late}]
            2 invoke consume
            2 ok consume [{{"id":"m1","delivery":2}}]
            3 invoke drain
            3 ok drain []
            "#
        )
    };
    let r = check(
        "delivery",
        AT_LEAST,
        &fixture(r#"{"id":"m1","delivery":1}"#),
    );
    assert_eq!(outcome(&r), "invalid reordered | reported duplicated");
    // The broker says the late delivery was itself a redelivery: an earlier one, unseen, may
    // have come in order.
    let r = check(
        "delivery",
        AT_LEAST,
        &fixture(r#"{"id":"m1","delivery":2}"#),
    );
    assert_eq!(outcome(&r), "valid | reported duplicated,maybe-reordered");
    assert!(anomaly(&r, "maybe-reordered")
        .explanation
        .contains("the broker counted this delivery of \"m1\" as its delivery number 2"));
}

#[test]
fn a_mismatched_produce_ack_names_the_id_plainly() {
    let e = check_err(
        "delivery",
        EXACTLY,
        "0 invoke produce 7
0 ok produce 999",
    );
    assert!(e.contains("acknowledges message 999 but"), "{e}");
    assert!(!e.contains("Int("), "{e}");
}

#[test]
fn out_of_order_redeliveries_are_only_maybe_reordered() {
    // m1's first delivery went to consumer 1, whose consume timed out: the broker redelivers m1
    // to consumer 2 after m2. Nothing proves an order violation.
    let fixture = |first_consume: &str| {
        format!(
            r#"
            0 invoke produce "m1"
            0 ok produce
            0 invoke produce "m2"
            0 ok produce
            1 invoke consume
            {first_consume}
            2 invoke consume
            2 ok consume ["m2"]
            2 invoke consume
            2 ok consume ["m1"]
            3 invoke drain
            3 ok drain []
            "#
        )
    };
    let r = check("delivery", EXACTLY, &fixture("1 info consume e=timed-out"));
    assert_eq!(outcome(&r), "valid | reported maybe-reordered");
    assert!(anomaly(&r, "maybe-reordered")
        .explanation
        .contains("a consume begun at event 4 had an unknown outcome"));
    let r = check("delivery", AT_LEAST, &fixture("1 ok consume [\"m1\"]"));
    assert_eq!(outcome(&r), "valid | reported duplicated");
    assert_eq!(
        delivery(EXACTLY, &fixture("1 fail consume")),
        "invalid reordered"
    );
}
