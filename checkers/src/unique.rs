//! The `unique` checker: at most one success per id, for creates of caller-chosen ids and for
//! ids a system hands out.
//!
//! Two successes prove a violation whatever their timing, so the checker needs no notion of
//! concurrency: per id it keeps the number of `ok` completions and the first two as evidence.
//! `info` never counts (an indeterminate create may or may not have happened, and a later `ok`
//! is then no proof of anything).

use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, Findings, Id, IdField, Interner, Step,
    StreamChecker, StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use serde_json::json;

const NONE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Successes {
    count: u32,
    first_invoke: u64,
    first: u64,
    second_invoke: u64,
    second: u64,
}

impl Successes {
    fn new() -> Self {
        Successes {
            count: 0,
            first_invoke: NONE,
            first: NONE,
            second_invoke: NONE,
            second: NONE,
        }
    }

    fn add(&mut self, invoke: u64, at: u64) {
        self.count = self.count.saturating_add(1);
        if self.first == NONE {
            (self.first_invoke, self.first) = (invoke, at);
        } else if self.second == NONE {
            (self.second_invoke, self.second) = (invoke, at);
        }
    }
}

#[derive(Debug)]
enum Pending {
    Create(u32),
    Generate,
    Ignored,
}

/// Every kind the unique checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Two `ok` creates of one id.
    DuplicateCreate,
    /// One id generated twice.
    DuplicateId,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[Kind::DuplicateCreate, Kind::DuplicateId];

    fn name(self) -> &'static str {
        match self {
            Kind::DuplicateCreate => "duplicate-create",
            Kind::DuplicateId => "duplicate-id",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::DuplicateCreate => "two creates of one id both succeeded",
            Kind::DuplicateId => "one id was handed out by two successful generates",
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::DuplicateCreate | Kind::DuplicateId => true,
        }
    }
}

/// The unique checker; see the module docs.
pub struct Unique {
    pairer: StreamPairer<Pending>,
    created: Interner,
    creates: Vec<Successes>,
    generated: Interner,
    generates: Vec<Successes>,
    ops: u64,
    refused: u64,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl Unique {
    pub fn new(_options: &CheckOptions) -> Result<Self, String> {
        Ok(Unique {
            pairer: StreamPairer::default(),
            created: Interner::default(),
            creates: Vec::new(),
            generated: Interner::default(),
            generates: Vec::new(),
            ops: 0,
            refused: 0,
            ignored: Default::default(),
        })
    }
}

const CREATE_SHAPE: &str = "a key, or a value that is an id or {\"id\": ID}";

impl StreamChecker for Unique {
    fn name(&self) -> &str {
        "unique"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let (created, creates, ignored, ops) = (
            &mut self.created,
            &mut self.creates,
            &mut self.ignored,
            &mut self.ops,
        );
        let step = self.pairer.push(line, e, || {
            Ok(match e.f {
                "create" => {
                    *ops += 1;
                    let n = match e.key {
                        Some(k) => created.intern(&Id::from_key(k)),
                        None => {
                            if e.value.is_null() {
                                return Err(bad_value(
                                    line,
                                    e,
                                    "no key and no value",
                                    CREATE_SHAPE,
                                ));
                            }
                            let IdField(id) = e
                                .value
                                .parse()
                                .map_err(|err| bad_value(line, e, err, CREATE_SHAPE))?;
                            created.intern(&id)
                        }
                    };
                    if n.1 {
                        creates.push(Successes::new());
                    }
                    Pending::Create(n.0)
                }
                "generate" => {
                    *ops += 1;
                    Pending::Generate
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
        match (open.payload, e.kind) {
            (Pending::Create(n), EventType::Ok) => {
                self.creates[n as usize].add(open.invoke_index, e.index)
            }
            (Pending::Create(_), EventType::Fail) => self.refused += 1,
            (Pending::Generate, EventType::Ok) => {
                let IdField(id) = e
                    .value
                    .parse()
                    .map_err(|err| bad_value(line, e, err, "the generated id, or {\"id\": ID}"))?;
                let (n, new) = self.generated.intern(&id);
                if new {
                    self.generates.push(Successes::new());
                }
                self.generates[n as usize].add(open.invoke_index, e.index);
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> CheckResult {
        let mut findings = Findings::default();
        for (kind, ids, list, verb) in [
            (
                Kind::DuplicateCreate,
                &self.created,
                &self.creates,
                "created",
            ),
            (
                Kind::DuplicateId,
                &self.generated,
                &self.generates,
                "generated",
            ),
        ] {
            for (i, s) in list.iter().enumerate().filter(|(_, s)| s.count > 1) {
                let key = ids.key(i as u32);
                findings.add(kind, || {
                    (
                        vec![s.first_invoke, s.first, s.second_invoke, s.second],
                        format!(
                            "Id {key} was {verb} successfully {} (events {} and {}); at most one success is allowed.",
                            plural(u64::from(s.count), "time"),
                            s.first,
                            s.second
                        ),
                        json!({ "id": key.to_json(), "successes": s.count }),
                    )
                });
            }
        }
        let parts = findings.finish(());
        let unknown_reason = (self.ops == 0).then(|| {
            "the history has no create or generate operations: is it a unique-id history?"
                .to_string()
        });
        let mut summary = format!(
            "unique: {} created, {} refused creates, {} generated; {}.",
            plural(
                self.creates.iter().filter(|s| s.count > 0).count() as u64,
                "id"
            ),
            self.refused,
            plural(self.generates.len() as u64, "id"),
            parts.sentence()
        );
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "create_ids": self.creates.len(),
            "created": self.creates.iter().filter(|s| s.count > 0).count(),
            "refused": self.refused,
            "generated": self.generates.len(),
            "ignored_ops": self.ignored,
        });
        parts.into_result("unique", summary, unknown_reason, details)
    }
}
