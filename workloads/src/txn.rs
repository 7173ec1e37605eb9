//! The transactional workloads `list-append` and `rw-register` (Elle's, docs/history.md): seeded
//! transactions of up to `txn-len-max` micro-ops over a few keys at a time, checked by the
//! checkers of the same names.
//!
//! Keys rotate as in the register workloads: `keys-in-flight` keys are in use at once, each
//! takes `writes-per-key` appends (or writes) and is then replaced by a fresh key. Few keys make
//! transactions conflict (which is what exposes isolation anomalies); rotation keeps every list
//! short, so reads stay cheap and the checker's version orders small. Appended and written
//! values are unique per key (a counter per key), which is what lets a read name its writer.
//! After the faults heal, one final transaction reads every key still in use, so the last
//! appends are seen.

use crate::generator::{self, Gen, Rng};
use crate::op::Invocation;
use crate::stall::option_count;
use crate::workload::{CheckerSpec, Workload};
use checkers::CheckOptions;
use rand::RngExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// SQL isolation levels a client can run transactions at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Isolation {
    pub fn parse(name: &str) -> Option<Isolation> {
        match name.to_ascii_lowercase().replace([' ', '_'], "-").as_str() {
            "read-committed" => Some(Isolation::ReadCommitted),
            "repeatable-read" => Some(Isolation::RepeatableRead),
            "serializable" => Some(Isolation::Serializable),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read-committed",
            Isolation::RepeatableRead => "repeatable-read",
            Isolation::Serializable => "serializable",
        }
    }
}

/// Options of the transactional workloads, from a plan's `[client]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOptions {
    pub keys_in_flight: u64,
    pub writes_per_key: u64,
    pub txn_len_max: u64,
    /// The level the client runs transactions at.
    pub isolation: Isolation,
    /// The model the checker judges against; default: the isolation level's own name.
    pub consistency_model: Option<String>,
}

/// The `[client]` options of the transactional workloads.
pub const TXN_CLIENT_OPTIONS: &[&str] = &[
    "isolation",
    "consistency-model",
    "keys-in-flight",
    "writes-per-key",
    "txn-len-max",
];

/// Bounds on the counts: enough to make conflicts rare or frequent, small enough that a read
/// returns a short list.
const KEYS_IN_FLIGHT_MAX: u64 = 1_000;
const WRITES_PER_KEY_MAX: u64 = 10_000;
const TXN_LEN_MAX: u64 = 64;
/// Attempts of the final read before the run gives up on it.
const FINAL_ATTEMPTS_MAX: u64 = 10;

impl Default for TxnOptions {
    fn default() -> Self {
        TxnOptions {
            keys_in_flight: 8,
            writes_per_key: 32,
            txn_len_max: 4,
            isolation: Isolation::Serializable,
            consistency_model: None,
        }
    }
}

impl TxnOptions {
    /// The options with a plan's `[client]` table applied; an error names the option.
    pub fn with_table(table: &BTreeMap<String, Value>) -> Result<TxnOptions, String> {
        let mut o = TxnOptions::default();
        for (key, v) in table {
            let bounded = |max: u64| {
                option_count(v).and_then(|n| match n {
                    1.. if n <= max => Ok(n),
                    _ => Err(format!("expected 1 to {max}, not {n}")),
                })
            };
            let set = match key.as_str() {
                "isolation" => match v.as_str().and_then(Isolation::parse) {
                    Some(i) => {
                        o.isolation = i;
                        Ok(())
                    }
                    None => Err(
                        "expected \"read-committed\", \"repeatable-read\" or \"serializable\""
                            .to_string(),
                    ),
                },
                "consistency-model" => match v.as_str().and_then(checkers::txn::Model::parse) {
                    Some(m) => {
                        o.consistency_model = Some(m.name().to_string());
                        Ok(())
                    }
                    None => Err(format!(
                        "expected one of: {}",
                        checkers::txn::Model::NAMES.join(", ")
                    )),
                },
                "keys-in-flight" => bounded(KEYS_IN_FLIGHT_MAX).map(|n| o.keys_in_flight = n),
                "writes-per-key" => bounded(WRITES_PER_KEY_MAX).map(|n| o.writes_per_key = n),
                "txn-len-max" => bounded(TXN_LEN_MAX).map(|n| o.txn_len_max = n),
                _ => Err(format!(
                    "unknown option for the transactional workloads; known: {}",
                    TXN_CLIENT_OPTIONS.join(", ")
                )),
            };
            set.map_err(|e| format!("client.{key}: {e}"))?;
        }
        Ok(o)
    }

    fn model(&self) -> String {
        self.consistency_model
            .clone()
            .unwrap_or_else(|| self.isolation.name().to_string())
    }
}

/// Keys in use, each with the writes it has had; fresh keys are numbered on.
#[derive(Debug)]
struct Keys {
    slots: Vec<(u64, u64)>,
    next_key: u64,
    writes_per_key: u64,
}

impl Keys {
    fn new(o: &TxnOptions) -> Self {
        Keys {
            slots: (0..o.keys_in_flight).map(|k| (k, 0)).collect(),
            next_key: o.keys_in_flight,
            writes_per_key: o.writes_per_key,
        }
    }

    /// A key for a read.
    fn any(&self, rng: &mut Rng) -> u64 {
        self.slots[rng.random_range(0..self.slots.len())].0
    }

    /// A key for a write and the value to write (1, 2, ... per key); the key retires after
    /// its last write.
    fn write(&mut self, rng: &mut Rng) -> (u64, u64) {
        let slot = rng.random_range(0..self.slots.len());
        let (k, n) = &mut self.slots[slot];
        *n += 1;
        let out = (*k, *n);
        if *n >= self.writes_per_key {
            self.slots[slot] = (self.next_key, 0);
            self.next_key += 1;
        }
        out
    }
}

fn txn_gen(o: &TxnOptions, write_f: &'static str, keys: Arc<Mutex<Keys>>) -> Gen {
    let len_max = o.txn_len_max;
    generator::from_fn(move |rng| {
        let mut keys = keys.lock().expect("the key set");
        let len = rng.random_range(1..=len_max);
        let mops: Vec<Value> = (0..len)
            .map(|_| {
                if rng.random_range(0..2) == 0 {
                    json!(["r", keys.any(rng), null])
                } else {
                    let (k, v) = keys.write(rng);
                    json!([write_f, k, v])
                }
            })
            .collect();
        Invocation::new("txn", Value::Array(mops))
    })
}

fn final_read(keys: Arc<Mutex<Keys>>) -> Gen {
    let read = generator::from_fn(move |_| {
        let keys = keys.lock().expect("the key set");
        let mops: Vec<Value> = keys
            .slots
            .iter()
            .map(|(k, _)| json!(["r", k, null]))
            .collect();
        Invocation::new("txn", Value::Array(mops))
    });
    generator::until_ok(FINAL_ATTEMPTS_MAX, read)
}

fn workload(name: &str, write_f: &'static str, o: &TxnOptions) -> Workload {
    let keys = Arc::new(Mutex::new(Keys::new(o)));
    Workload {
        name: name.into(),
        guarantee: format!(
            "transactions at {} isolation, judged as {}",
            o.isolation.name(),
            o.model()
        ),
        checkers: vec![CheckerSpec {
            name: name.into(),
            options: CheckOptions {
                consistency_model: Some(o.model()),
                ..CheckOptions::default()
            },
        }],
        generator: txn_gen(o, write_f, keys.clone()),
        final_generator: Some(final_read(keys)),
    }
}

/// Transactions that append to lists and read them whole; checked by `list-append`.
pub fn list_append(o: &TxnOptions) -> Workload {
    workload("list-append", "append", o)
}

/// Transactions that write and read registers; checked by `rw-register`.
pub fn rw_register(o: &TxnOptions) -> Workload {
    workload("rw-register", "w", o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn values_are_unique_per_key_and_keys_rotate() {
        let o = TxnOptions {
            keys_in_flight: 2,
            writes_per_key: 3,
            ..TxnOptions::default()
        };
        let mut keys = Keys::new(&o);
        let mut rng = Rng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..60 {
            let (k, v) = keys.write(&mut rng);
            assert!(seen.insert((k, v)), "value {v} written twice to key {k}");
            assert!((1..=3).contains(&v));
        }
        assert!(keys.next_key >= 20, "keys retire after 3 writes each");
    }

    #[test]
    fn client_options_are_checked_by_name() {
        let table = |k: &str, v: Value| BTreeMap::from([(k.to_string(), v)]);
        let o = TxnOptions::with_table(&table("isolation", json!("repeatable read"))).unwrap();
        assert_eq!(o.isolation, Isolation::RepeatableRead);
        assert_eq!(o.model(), "repeatable-read");
        let e = TxnOptions::with_table(&table("isolation", json!("snapshot"))).unwrap_err();
        assert!(e.starts_with("client.isolation:"), "{e}");
        let e = TxnOptions::with_table(&table("txn-len-max", json!(0))).unwrap_err();
        assert!(e.contains("expected 1 to 64"), "{e}");
        let e = TxnOptions::with_table(&table("nope", json!(1))).unwrap_err();
        assert!(e.contains("keys-in-flight"), "{e}");
    }
}
