//! The `counter` checker: every read lies within the bounds the increments allow.
//!
//! For a read, an add is *certain* when it completed `ok` before the read began, and *possible*
//! when it began before the read ended and did not fail (still running, `info`, or `ok` after
//! the read began). The read must see every certain add and any subset of the possible ones, so
//! its value lies in
//!
//! ```text
//! [initial + certain + negative part of (possible - certain),
//!  initial + certain + positive part of (possible - certain)]
//! ```
//!
//! Four running sums per counter give both bounds in O(1): the positive and negative deltas of
//! `ok`-completed adds (snapshotted when a read begins) and of begun-and-not-failed adds (read
//! when it ends). Sums are `i128`, so no realistic history overflows them.

use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, Findings, Id, Interner, Step,
    StreamChecker, StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use serde_json::{json, Value};

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    ok_pos: i128,
    ok_neg: i128,
    begun_pos: i128,
    begun_neg: i128,
}

#[derive(Debug)]
enum Pending {
    Add {
        counter: u32,
        delta: i64,
    },
    Read {
        counter: u32,
        ok_pos: i128,
        ok_neg: i128,
    },
    Ignored,
}

/// Every kind the counter checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A read outside the bounds the adds allow.
    OutOfBounds,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[Kind::OutOfBounds];

    fn name(self) -> &'static str {
        match self {
            Kind::OutOfBounds => "out-of-bounds",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::OutOfBounds => {
                "a read outside the bounds that the initial value and the adds allow"
            }
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::OutOfBounds => true,
        }
    }
}

/// The counter checker; see the module docs.
pub struct Counter {
    initial: i128,
    pairer: StreamPairer<Pending>,
    names: Interner,
    sums: Vec<Sums>,
    reads: Vec<u64>,
    findings: Findings<Kind>,
    adds: u64,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl Counter {
    pub fn new(options: &CheckOptions) -> Result<Self, String> {
        let initial = match &options.initial {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                format!("--initial {v} does not suit the counter checker; expected an integer (the counter's starting value)")
            })?,
        };
        Ok(Counter {
            initial: i128::from(initial),
            pairer: StreamPairer::default(),
            names: Interner::default(),
            sums: Vec::new(),
            reads: Vec::new(),
            findings: Findings::default(),
            adds: 0,
            ignored: Default::default(),
        })
    }
}

fn split(delta: i64) -> (i128, i128) {
    if delta >= 0 {
        (i128::from(delta), 0)
    } else {
        (0, i128::from(delta))
    }
}

impl StreamChecker for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let (names, sums, reads, ignored, adds) = (
            &mut self.names,
            &mut self.sums,
            &mut self.reads,
            &mut self.ignored,
            &mut self.adds,
        );
        let step = self.pairer.push(line, e, || {
            let mut counter_of = || {
                let (n, new) = names.intern(&Id::from_key(e.key.unwrap_or("")));
                if new {
                    sums.push(Sums::default());
                    reads.push(0);
                }
                n
            };
            Ok(match e.f {
                "add" | "increment" | "incr" => {
                    let delta: Option<i64> = e
                        .value
                        .parse()
                        .map_err(|err| bad_value(line, e, err, "an integer delta (null = 1)"))?;
                    let delta = delta.unwrap_or(1);
                    let counter = counter_of();
                    let (pos, neg) = split(delta);
                    let s = &mut sums[counter as usize];
                    s.begun_pos += pos;
                    s.begun_neg += neg;
                    *adds += 1;
                    Pending::Add { counter, delta }
                }
                "read" => {
                    let counter = counter_of();
                    let s = sums[counter as usize];
                    Pending::Read {
                        counter,
                        ok_pos: s.ok_pos,
                        ok_neg: s.ok_neg,
                    }
                }
                other => {
                    *ignored.entry(other.to_string()).or_default() += 1;
                    Pending::Ignored
                }
            })
        })?;
        let Step::Completed(open) = step else {
            return Ok(());
        };
        match open.payload {
            Pending::Add { counter, delta } => {
                let (pos, neg) = split(delta);
                let s = &mut self.sums[counter as usize];
                match e.kind {
                    EventType::Ok => {
                        s.ok_pos += pos;
                        s.ok_neg += neg;
                    }
                    EventType::Fail => {
                        s.begun_pos -= pos;
                        s.begun_neg -= neg;
                    }
                    _ => {}
                }
            }
            Pending::Read {
                counter,
                ok_pos,
                ok_neg,
            } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                let value: i64 = e
                    .value
                    .parse()
                    .map_err(|err| bad_value(line, e, err, "the counter's value, an integer"))?;
                self.reads[counter as usize] += 1;
                let s = self.sums[counter as usize];
                let lower = self.initial + ok_pos + s.begun_neg;
                let upper = self.initial + s.begun_pos + ok_neg;
                let value = i128::from(value);
                if value < lower || value > upper {
                    let name = self.names.key(counter);
                    self.findings.add(Kind::OutOfBounds, || {
                        (
                            vec![open.invoke_index, e.index],
                            format!(
                                "Counter {name} read {value} (events {}-{}), outside [{lower}, {upper}]: the adds acknowledged before the read began and those that may have applied allow only that range.",
                                open.invoke_index, e.index
                            ),
                            json!({ "counter": name.to_json(), "value": value as i64, "lower": lower as i64, "upper": upper as i64 }),
                        )
                    });
                }
            }
            Pending::Ignored => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> CheckResult {
        let parts = self.findings.finish(());
        let reads: u64 = self.reads.iter().sum();
        let mut unknown = Vec::new();
        if self.adds == 0 && reads == 0 {
            unknown.push(
                "the history has no add or ok read operations: is it a counter history?"
                    .to_string(),
            );
        }
        let unread: Vec<String> = (0..self.names.len())
            .filter(|&i| self.reads[i] == 0)
            .map(|i| self.names.key(i as u32).to_string())
            .collect();
        if self.adds > 0 && !unread.is_empty() {
            unknown.push(format!(
                "counter(s) {} never had an ok read",
                unread.join(", ")
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));
        let mut summary = format!(
            "counter (initial {}): {}, {} checked against their bounds; {}.",
            self.initial,
            plural(self.adds, "add"),
            plural(reads, "ok read"),
            parts.sentence()
        );
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "initial": self.initial as i64,
            "adds": self.adds,
            "ok_reads": reads,
            "counters": self.names.len(),
            "ignored_ops": self.ignored,
        });
        parts.into_result("counter", summary, unknown_reason, details)
    }
}
