//! The `idempotency` checker: per idempotency key, exactly one effect, and every successful
//! response equal.
//!
//! Responses are compared as JSON values (key order and spacing do not matter), each against the
//! first `ok` response of its key, which is the only response the checker keeps. Effects cannot
//! be seen in responses alone (two requests may both answer "created p1" while creating two
//! rows), so the history must read them back: an `effects` read gives the number of effects the
//! system shows for a key. Whether a zero is an anomaly depends on timing: it is when a request
//! of the key had completed `ok` before the read began; a read concurrent with the first request
//! may legitimately see nothing yet. The "every request failed, yet there is an effect" check
//! needs the whole history and is made at the end.

use crate::stream::{
    bad_value, end_summary, plural, AnomalyKind, EventRef, Findings, Id, Interner, Step,
    StreamChecker, StreamPairer,
};
use crate::{CheckOptions, CheckResult, EventType, HistoryError};
use serde_json::{json, Value};

const NONE: u64 = u64::MAX;

#[derive(Debug)]
struct KeyState {
    ok: u64,
    fail: u64,
    info: u64,
    /// First `ok` request or command completion, and its response (requests only).
    first_ok: u64,
    first_response: Option<Value>,
    /// Highest effect count read, and the read that saw it.
    max_effects: u64,
    max_effects_at: u64,
    effects_reads: u64,
}

impl KeyState {
    fn new() -> Self {
        KeyState {
            ok: 0,
            fail: 0,
            info: 0,
            first_ok: NONE,
            first_response: None,
            max_effects: 0,
            max_effects_at: NONE,
            effects_reads: 0,
        }
    }
}

#[derive(Debug)]
enum Pending {
    Request {
        key: u32,
        compare: bool,
    },
    /// `ok_before`: per key read, whether an `ok` request of it had completed (key None: all
    /// keys, judged at completion from `first_ok < invoke`).
    Effects {
        key: Option<u32>,
        ok_before: bool,
    },
    Ignored,
}

/// Every kind the idempotency checker reports (docs/history.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Two `ok` responses of one `request` key differ.
    DifferentResponses,
    /// An effects read above 1.
    MultipleEffects,
    /// An effects read of 0 begun after a request or command of the key had completed `ok`.
    MissingEffect,
    /// Effects although every request of the key failed.
    UnexpectedEffect,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[
        Kind::DifferentResponses,
        Kind::MultipleEffects,
        Kind::MissingEffect,
        Kind::UnexpectedEffect,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::DifferentResponses => "different-responses",
            Kind::MultipleEffects => "multiple-effects",
            Kind::MissingEffect => "missing-effect",
            Kind::UnexpectedEffect => "unexpected-effect",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::DifferentResponses => {
                "two ok responses to requests with one idempotency key differ"
            }
            Kind::MultipleEffects => "an effects read shows more than one effect for a key",
            Kind::MissingEffect => {
                "an effects read begun after a request or command of the key succeeded shows none"
            }
            Kind::UnexpectedEffect => "effects shown for a key although every request of it failed",
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::DifferentResponses
            | Kind::MultipleEffects
            | Kind::MissingEffect
            | Kind::UnexpectedEffect => true,
        }
    }
}

/// The idempotency checker; see the module docs.
pub struct Idempotency {
    pairer: StreamPairer<Pending>,
    keys: Interner,
    state: Vec<KeyState>,
    findings: Findings<Kind>,
    requests: u64,
    ignored: std::collections::BTreeMap<String, u64>,
}

impl Idempotency {
    pub fn new(_options: &CheckOptions) -> Result<Self, String> {
        Ok(Idempotency {
            pairer: StreamPairer::default(),
            keys: Interner::default(),
            state: Vec::new(),
            findings: Findings::default(),
            requests: 0,
            ignored: Default::default(),
        })
    }

    fn key(&mut self, k: &Id<'_>) -> u32 {
        let (n, new) = self.keys.intern(k);
        if new {
            self.state.push(KeyState::new());
        }
        n
    }

    fn effects_seen(&mut self, key: u32, n: u64, ok_before: bool, invoke: u64, at: u64) {
        let s = &mut self.state[key as usize];
        s.effects_reads += 1;
        if s.max_effects_at == NONE || n > s.max_effects {
            s.max_effects = n;
            s.max_effects_at = at;
        }
        let name = self.keys.key(key);
        if n > 1 {
            self.findings.add(Kind::MultipleEffects, || {
                (
                    vec![invoke, at],
                    format!("The effects read at event {at} shows {n} effects for key {name}; exactly one is allowed."),
                    json!({ "key": name.to_json(), "effects": n }),
                )
            });
        } else if n == 0 && ok_before {
            let first_ok = s.first_ok;
            self.findings.add(Kind::MissingEffect, || {
                (
                    vec![first_ok, invoke, at],
                    format!("A request of key {name} succeeded at event {first_ok}, yet the effects read begun later (event {invoke}) shows none."),
                    json!({ "key": name.to_json() }),
                )
            });
        }
    }
}

const EFFECTS_SHAPE: &str = "a number of effects (with a key), or {KEY: N, ...}";

impl StreamChecker for Idempotency {
    fn name(&self) -> &str {
        "idempotency"
    }

    fn event(&mut self, line: usize, e: &EventRef<'_>) -> Result<(), HistoryError> {
        let (keys, state, ignored, requests) = (
            &mut self.keys,
            &mut self.state,
            &mut self.ignored,
            &mut self.requests,
        );
        let step = self.pairer.push(line, e, || {
            let mut key_of = |k: &str| {
                let (n, new) = keys.intern(&Id::from_key(k));
                if new {
                    state.push(KeyState::new());
                }
                n
            };
            Ok(match e.f {
                "request" | "command" => {
                    let Some(k) = e.key else {
                        return Err(HistoryError {
                            line,
                            message: format!("invoke {:?} has no key; expected the idempotency key (or what the command changes) as the event's key (see docs/history.md)", e.f),
                        });
                    };
                    *requests += 1;
                    Pending::Request {
                        key: key_of(k),
                        compare: e.f == "request",
                    }
                }
                "effects" => match e.key {
                    Some(k) => {
                        let key = key_of(k);
                        let s = &state[key as usize];
                        Pending::Effects {
                            key: Some(key),
                            ok_before: s.first_ok != NONE,
                        }
                    }
                    None => Pending::Effects {
                        key: None,
                        ok_before: false,
                    },
                },
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
            Pending::Request { key, compare } => {
                let s = &mut self.state[key as usize];
                match e.kind {
                    EventType::Ok => {
                        s.ok += 1;
                        if s.first_ok == NONE {
                            s.first_ok = e.index;
                            if compare {
                                s.first_response = Some(e.value.to_value());
                            }
                        } else if compare {
                            let response = e.value.to_value();
                            let first = s.first_response.get_or_insert(Value::Null);
                            if *first != response {
                                let (name, first_at) = (self.keys.key(key), s.first_ok);
                                let first = first.clone();
                                self.findings.add(Kind::DifferentResponses, || {
                                    (
                                        vec![first_at, open.invoke_index, e.index],
                                        format!("Two successful requests with idempotency key {name} got different responses: {first} (event {first_at}) and {response} (event {}).", e.index),
                                        json!({ "key": name.to_json(), "first": first, "other": response }),
                                    )
                                });
                            }
                        }
                    }
                    EventType::Fail => s.fail += 1,
                    _ => s.info += 1,
                }
            }
            Pending::Effects { key, ok_before } => {
                if e.kind != EventType::Ok {
                    return Ok(());
                }
                match key {
                    Some(key) => {
                        let n: u64 = e
                            .value
                            .parse()
                            .map_err(|err| bad_value(line, e, err, EFFECTS_SHAPE))?;
                        self.effects_seen(key, n, ok_before, open.invoke_index, e.index);
                    }
                    None => {
                        let map: std::collections::BTreeMap<std::borrow::Cow<str>, u64> = e
                            .value
                            .parse()
                            .map_err(|err| bad_value(line, e, err, EFFECTS_SHAPE))?;
                        for (k, n) in map {
                            let key = self.key(&Id::from_key(&k));
                            let first_ok = self.state[key as usize].first_ok;
                            let ok_before = first_ok != NONE && first_ok < open.invoke_index;
                            self.effects_seen(key, n, ok_before, open.invoke_index, e.index);
                        }
                    }
                }
            }
            Pending::Ignored => {}
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> CheckResult {
        for open in self.pairer.take_open() {
            if let Pending::Request { key, .. } = open.payload {
                self.state[key as usize].info += 1;
            }
        }
        let mut findings = std::mem::take(&mut self.findings);
        let mut unread = Vec::new();
        for (i, s) in self.state.iter().enumerate() {
            let name = self.keys.key(i as u32);
            let requested = s.ok + s.fail + s.info > 0;
            if requested && s.effects_reads == 0 {
                unread.push(name.to_string());
            }
            if requested && s.ok == 0 && s.info == 0 && s.max_effects > 0 {
                let (at, n) = (s.max_effects_at, s.max_effects);
                findings.add(Kind::UnexpectedEffect, || {
                    (
                        vec![at],
                        format!("Every request of key {name} failed, yet the effects read at event {at} shows {n}."),
                        json!({ "key": name.to_json(), "effects": n }),
                    )
                });
            }
        }
        let parts = findings.finish(());
        let mut unknown = Vec::new();
        if self.requests == 0 {
            unknown.push(
                "the history has no request or command operations: is it an idempotency history?"
                    .to_string(),
            );
        }
        if !unread.is_empty() {
            let shown: Vec<&str> = unread.iter().take(5).map(String::as_str).collect();
            unknown.push(format!(
                "{} never had an ok effects read ({}{}): one effect cannot be told from two",
                plural(unread.len() as u64, "key"),
                shown.join(", "),
                if unread.len() > 5 { ", ..." } else { "" }
            ));
        }
        let unknown_reason = (!unknown.is_empty()).then(|| unknown.join("; "));
        let (ok, fail, info) = self
            .state
            .iter()
            .fold((0, 0, 0), |(a, b, c), s| (a + s.ok, b + s.fail, c + s.info));
        let mut summary = format!(
            "idempotency: {} with {} ({ok} ok, {fail} failed, {info} indeterminate); {}.",
            plural(self.state.len() as u64, "key"),
            plural(self.requests, "request"),
            parts.sentence()
        );
        end_summary(&mut summary, &self.ignored, unknown_reason.as_deref());
        let details = json!({
            "keys": self.state.len(),
            "requests": self.requests,
            "ok": ok, "fail": fail, "info": info,
            "keys_without_effects_read": unread.len(),
            "ignored_ops": self.ignored,
        });
        parts.into_result("idempotency", summary, unknown_reason, details)
    }
}
