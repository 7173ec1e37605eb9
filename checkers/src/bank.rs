//! The `bank` checker: transfers move money between accounts; every read sees the same total.
//!
//! Conservation is a property of each read alone, so the checker keeps nothing per operation:
//! it sums each `ok` read and compares it with the total. The total is what the user says
//! (`--initial`, a number or the opening balances) or else the first `ok` read's sum; the
//! summary says which, because a first read that is itself wrong would make every other read
//! look wrong. Transfers are paired (the contract is checked) but their amounts do not matter to
//! conservation.

use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, Findings, Step, StreamChecker,
    StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Debug)]
enum Pending {
    Transfer,
    Read,
    Ignored,
}

/// Every kind the bank checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An `ok` read whose balances do not add up to the total.
    WrongTotal,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[Kind::WrongTotal];

    fn name(self) -> &'static str {
        match self {
            Kind::WrongTotal => "wrong-total",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::WrongTotal => "an ok read whose balances do not add up to the conserved total",
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::WrongTotal => true,
        }
    }
}

/// The bank checker; see the module docs.
pub struct Bank {
    /// The total, and where it came from.
    total: Option<(i128, String)>,
    pairer: StreamPairer<Pending>,
    findings: Findings<Kind>,
    transfers: u64,
    reads: u64,
    ignored: BTreeMap<String, u64>,
}

impl Bank {
    pub fn new(options: &CheckOptions) -> Result<Self, String> {
        let total = match &options.initial {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some((
                i128::from(n.as_i64().ok_or_else(|| {
                    format!("--initial {n} does not suit the bank checker; expected an integer total or an object of integer balances")
                })?),
                "--initial".to_string(),
            )),
            Some(Value::Object(m)) => {
                let mut sum = 0i128;
                for (account, v) in m {
                    sum += i128::from(v.as_i64().ok_or_else(|| {
                        format!("--initial: account {account:?} has balance {v}; expected an integer")
                    })?);
                }
                Some((sum, "the sum of the --initial balances".to_string()))
            }
            Some(other) => {
                return Err(format!(
                    "--initial {other} does not suit the bank checker; expected an integer total or an object of opening balances"
                ))
            }
        };
        Ok(Bank {
            total,
            pairer: StreamPairer::default(),
            findings: Findings::default(),
            transfers: 0,
            reads: 0,
            ignored: BTreeMap::new(),
        })
    }
}

impl StreamChecker for Bank {
    fn name(&self) -> &str {
        "bank"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let ignored = &mut self.ignored;
        let step = self.pairer.push(line, e, || {
            Ok(match e.f {
                "transfer" => Pending::Transfer,
                "read" => Pending::Read,
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
            Pending::Transfer => self.transfers += 1,
            Pending::Read if e.kind == EventType::Ok => {
                let balances: BTreeMap<Cow<str>, i64> = e.value.parse().map_err(|err| {
                    bad_value(
                        line,
                        e,
                        err,
                        "an object of integer balances, {\"A\": 10, ...}",
                    )
                })?;
                self.reads += 1;
                let sum: i128 = balances.values().map(|&b| i128::from(b)).sum();
                let (total, source) = self.total.get_or_insert_with(|| {
                    (
                        sum,
                        format!("the sum of the first ok read (event {})", e.index),
                    )
                });
                if sum != *total {
                    let (total, source) = (*total, source.clone());
                    let shown = json!(balances);
                    self.findings.add(Kind::WrongTotal, || {
                        (
                            vec![open.invoke_index, e.index],
                            format!("The read at event {} sums to {sum}, not the total {total} ({source}): balances {shown}.", e.index),
                            json!({ "sum": sum as i64, "total": total as i64, "balances": shown }),
                        )
                    });
                }
            }
            Pending::Read | Pending::Ignored => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> CheckResult {
        let parts = self.findings.finish(());
        let unknown_reason = (self.reads == 0).then(|| {
            "the history has no ok read: conservation of the total cannot be checked".to_string()
        });
        let total_text = match &self.total {
            Some((t, source)) => format!("total {t}, from {source}"),
            None => "no total".to_string(),
        };
        let mut summary = format!(
            "bank ({total_text}): {}, {} checked; {}.",
            plural(self.transfers, "transfer"),
            plural(self.reads, "ok read"),
            parts.sentence()
        );
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "total": self.total.as_ref().map(|(t, _)| *t as i64),
            "total_source": self.total.as_ref().map(|(_, s)| s.clone()),
            "transfers": self.transfers,
            "ok_reads": self.reads,
            "ignored_ops": self.ignored,
        });
        parts.into_result("bank", summary, unknown_reason, details)
    }
}
