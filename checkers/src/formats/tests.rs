use super::*;
use serde_json::json;

fn read(text: &str) -> History {
    read_str(text, None).unwrap_or_else(|e| panic!("{e}"))
}

fn read_err(text: &str) -> String {
    read_str(text, None).unwrap_err().to_string()
}

#[test]
fn jsonl_reads_the_contract_example() {
    let h = read(concat!(
        r#"{"index":0,"time":1200345,"process":3,"type":"invoke","f":"cas","key":"r1","value":[1,2]}"#,
        "\n",
        r#"{"index":1,"time":1950002,"process":3,"type":"ok","f":"cas","key":"r1","value":[1,2]}"#,
        "\n",
        r#"{"index":2,"time":2000000,"process":"nemesis","type":"info","f":"start-partition","value":{"n1":["n2","n3"]}}"#,
        "\n"
    ));
    assert_eq!(h.events.len(), 3);
    assert_eq!(h.events[0].key.as_deref(), Some("r1"));
    assert_eq!(h.events[2].process, Process::Nemesis);
    assert!(!h.synthetic_time);
    let ops = h.ops().unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].outcome, EventType::Ok);
    assert_eq!(ops[0].complete_time, Some(1950002));
}

#[test]
fn jsonl_numeric_keys_become_strings() {
    let h = read(r#"{"index":0,"process":1,"type":"invoke","f":"get","key":7}"#);
    assert_eq!(h.events[0].key.as_deref(), Some("7"));
}

#[test]
fn jsonl_round_trips_through_the_writer() {
    let h = read("{:process 0, :type :invoke, :f :write, :value 3}\n{:process 0, :type :ok, :f :write, :value 3}\n{:process :nemesis, :type :info, :f :start-partition, :value {:n1 [:n2]}}");
    let mut out = Vec::new();
    write_jsonl(&h, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(detect(&text).unwrap(), Format::Jsonl);
    let back = read(&text);
    assert_eq!(back.events, h.events);
}

#[test]
fn edn_vector_with_comments_nemesis_and_knossos_cas() {
    let h = read(
        "; a Knossos history\n[{:type :invoke, :f :cas, :value [1 2], :process 0, :time 10}\n {:type :invoke :f :start :process :nemesis :time 11}\n {:type :fail, :f :cas, :value [1 2], :process 0, :time 20}]\n",
    );
    assert_eq!(h.events.len(), 3);
    assert_eq!(h.events[0].value, json!([1, 2]));
    assert_eq!(h.events[1].process, Process::Nemesis);
    assert_eq!(h.events[2].time, 20);
    assert!(!h.synthetic_time);
}

#[test]
fn edn_one_map_per_line_like_porcupine_kv() {
    let h = read("{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n{:process 0, :type :ok, :f :get, :key \"5\", :value \"\"}\n");
    assert_eq!(h.events[1].value, json!(""));
    assert_eq!(h.events[1].key.as_deref(), Some("5"));
    assert!(h.synthetic_time);
}

#[test]
fn jepsen_log_lines_with_timeouts() {
    let h = read("INFO  jepsen.util - 4\t:invoke\t:write\t3\nINFO  jepsen.util - 2\t:invoke\t:cas\t[3 0]\nsome other log line\nINFO  jepsen.util - 4\t:info\t:write\t:timed-out\nINFO  jepsen.util - 2\t:ok\t:cas\t[3 0]\n");
    assert_eq!(h.events.len(), 4);
    assert_eq!(h.events[2].kind, EventType::Info);
    assert_eq!(h.events[2].error.as_deref(), Some("timed-out"));
    assert_eq!(h.events[3].value, json!([3, 0]));
    let ops = h.ops().unwrap();
    assert_eq!(ops[0].invoke_value, json!(3));
    assert!(ops[0].is_info());
}

#[test]
fn jepsen_log_without_prefix_space_separated() {
    let h = read("0 :invoke :read nil\n0 :ok :read 3\n");
    assert_eq!(h.events[1].value, json!(3));
}

#[test]
fn a_timed_out_ok_is_indeterminate() {
    let h = read("0 :invoke :write 1\n0 :ok :write :timed-out\n");
    assert_eq!(h.events[1].kind, EventType::Info);
}

#[test]
fn a_read_logged_fail_timed_out_observes_nothing_and_its_process_goes_on() {
    // The shape of Jepsen's etcd logs: the read timed out, Jepsen logged it :fail, and the
    // same process invoked again.
    let h = read(concat!(
        "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n",
        "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n",
        "INFO  jepsen.util - 3\t:invoke\t:write\t4\n",
        "INFO  jepsen.util - 3\t:ok\t:write\t4\n",
    ));
    let ops = h.ops().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].outcome, EventType::Fail);
    assert_eq!(ops[0].error.as_deref(), Some("timed-out"));
    assert!(ops[0].complete_value.is_null());
    assert_eq!(ops[1].outcome, EventType::Ok);
}

#[test]
fn a_log_s_failed_cas_is_an_observed_mismatch() {
    let h = read("1 :invoke :cas [1 2]\n1 :fail :cas [1 2]\n");
    assert_eq!(h.events[1].error.as_deref(), Some("cas-mismatch"));
    // EDN keeps Jepsen's meaning: the failure says only that it did not take effect.
    let h = read("{:process 1, :type :invoke, :f :cas, :value [1 2]}\n{:process 1, :type :fail, :f :cas, :value [1 2]}\n");
    assert_eq!(h.events[1].error, None);
}

// --- bad input: one message naming the line (and column), never a panic ---

#[test]
fn no_history_lines_read_as_an_empty_history() {
    for text in ["", "\n  \n", "; only a comment\n", "[]", "[\n]\n"] {
        let h = read(text);
        assert!(h.events.is_empty(), "{text:?}");
    }
    let forced = read_str("\n", Some(Format::JepsenLog)).unwrap();
    assert!(forced.events.is_empty());
}

#[test]
fn a_json_array_is_named_as_such() {
    let e = read_err("[{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}]");
    assert!(e.contains("JSON array"), "{e}");
    assert!(e.contains("--format"), "{e}");
    assert!(!e.contains("empty keyword"), "{e}");
}

#[test]
fn truncated_jsonl_line() {
    let e = read_err("{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"process\":0,\"ty");
    assert!(e.starts_with("line 2, column"), "{e}");
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn truncated_edn_vector() {
    let e = read_err("[{:type :invoke, :f :read, :process 0}\n {:type :ok, :f :re");
    assert!(e.starts_with("line 2"), "{e}");
}

#[test]
fn binary_input() {
    let e = read_bytes(b"{\"index\":0}\n\x00\x01\x02", None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 2, column 1"), "{e}");
    assert!(e.contains("binary"), "{e}");
}

#[test]
fn invalid_utf8() {
    let e = read_bytes(b"0 :invoke :read nil\n0 :ok :read \xff\n", None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("line 2, column 13"), "{e}");
    assert!(e.contains("UTF-8"), "{e}");
}

#[test]
fn ten_megabyte_single_line() {
    let line = format!(
        "{{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"x\",\"value\":\"{}",
        "a".repeat(10 << 20)
    );
    let e = read_err(&line);
    assert!(
        e.starts_with("line 1, column"),
        "{}",
        &e[..e.len().min(200)]
    );
    assert!(e.len() < 300, "the message must not echo the line");
}

#[test]
fn completion_without_invocation() {
    let e = read_err("{\"index\":0,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":1,\"process\":1,\"type\":\"ok\",\"f\":\"read\"}\n");
    assert!(e.starts_with("line 2:"), "{e}");
    assert!(e.contains("no open invocation"), "{e}");
}

#[test]
fn two_open_invocations_on_one_process() {
    let e = read_err("0 :invoke :read nil\n0 :invoke :write 1\n");
    assert!(e.starts_with("line 2:") && e.contains("still open"), "{e}");
}

#[test]
fn invoke_after_info() {
    let e = read_err("0 :invoke :read nil\n0 :info :read nil\n0 :invoke :read nil\n");
    assert!(
        e.starts_with("line 3:") && e.contains("after an info"),
        "{e}"
    );
}

#[test]
fn unknown_type() {
    let e = read_err("{\"index\":0,\"process\":0,\"type\":\"begin\",\"f\":\"read\"}\n");
    assert!(
        e.starts_with("line 1, column") && e.contains("unknown variant"),
        "{e}"
    );
    let e = read_err("0 :begin :read nil\n");
    assert!(
        e.starts_with("line 1:") && e.contains("unknown type"),
        "{e}"
    );
    let e = read_err("{:type :begin, :f :read, :process 0}");
    assert!(
        e.starts_with("line 1:") && e.contains("unknown :type"),
        "{e}"
    );
}

#[test]
fn indices_must_increase() {
    let e = read_err("{\"index\":5,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{\"index\":5,\"process\":0,\"type\":\"ok\",\"f\":\"read\"}\n");
    assert!(
        e.starts_with("line 2:") && e.contains("strictly increasing"),
        "{e}"
    );
}

#[test]
fn never_completed_invocation_counts_as_info() {
    let h = read("0 :invoke :write 1\n1 :invoke :read nil\n1 :ok :read 1\n");
    let ops = h.ops().unwrap();
    assert!(ops[0].is_info());
    assert_eq!(ops[0].complete_index, None);
}
