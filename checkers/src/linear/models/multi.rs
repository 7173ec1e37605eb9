//! `multi-register`: several registers read and written together, atomically (Knossos's
//! multi-register). Ops:
//! - `txn` with a list of micro-ops `[f k v]`, `f` one of `r`/`read`, `w`/`write`, applied in
//!   order (reads must see the value, writes set it);
//! - `read` with an object `{k: v}` of the values read; `write` with an object of the values
//!   written.
//!
//! A read of nil means the register was never written (with [`MultiRegister::knossos`]: that
//! the value is unknown, as Knossos reads it). An unanswered txn keeps its writes and
//! drops its reads (they got no answer). Ops may span keys, so the model is one partition.

use super::{input_value, show_list, unknown_f, Interner};
use crate::linear::Model;
use crate::Op;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct MultiRegister {
    keys: HashMap<String, u32>,
    names: Vec<String>,
    values: Interner,
    /// Initial value of every register, unless `per_key` says otherwise.
    initial: u32,
    per_key: HashMap<String, u32>,
    /// Knossos's conventions: a read of nil tells nothing.
    knossos: bool,
}

/// One read or write of a register inside an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micro {
    pub write: bool,
    pub key: u32,
    pub value: u32,
}

/// The micro-ops of one op, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiOp(pub Vec<Micro>);

impl MultiRegister {
    /// `initial`: an object of key -> value, or one value for every register (default nil).
    pub fn new(initial: Option<&Value>) -> Result<Self, String> {
        let mut m = MultiRegister::default();
        match initial {
            None => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let id = m.values.id(v);
                    m.per_key.insert(k.clone(), id);
                }
            }
            Some(v) => m.initial = m.values.id(v),
        }
        Ok(m)
    }

    /// Knossos's conventions: a micro-op reading nil means "value unknown" and is dropped.
    pub fn knossos(mut self) -> Self {
        self.knossos = true;
        self
    }

    fn key(&mut self, k: &Value) -> u32 {
        let name = match k {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(&id) = self.keys.get(&name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.keys.insert(name.clone(), id);
        self.names.push(name);
        id
    }

    fn micro_ops(&mut self, op: &Op) -> Result<Vec<Micro>, String> {
        let value = if op.is_info() {
            input_value(op)
        } else {
            op.value()
        };
        match op.f.as_str() {
            "txn" => {
                let Value::Array(items) = value else {
                    return Err("a txn value must be a list of [f key value]".to_string());
                };
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let (f, k, v) = match item.as_array().map(Vec::as_slice) {
                        Some([f, k, v]) => (f, k, v),
                        _ => {
                            return Err(format!("a txn micro-op must be [f key value], got {item}"))
                        }
                    };
                    let write = match f.as_str() {
                        Some("r" | "read") => false,
                        Some("w" | "write") => true,
                        _ => {
                            return Err(format!(
                                "a txn micro-op's f must be r, read, w or write, got {f}"
                            ))
                        }
                    };
                    out.push(Micro {
                        write,
                        key: self.key(k),
                        value: self.values.id(v),
                    });
                }
                Ok(out)
            }
            "read" | "write" => {
                let Value::Object(map) = value else {
                    return Err(format!(
                        "a {} value must be an object of key -> value",
                        op.f
                    ));
                };
                let write = op.f == "write";
                Ok(map
                    .iter()
                    .map(|(k, v)| Micro {
                        write,
                        key: self.key(&Value::String(k.clone())),
                        value: self.values.id(v),
                    })
                    .collect())
            }
            _ => Err(unknown_f(op, "multi-register", "txn, read or write")),
        }
    }
}

impl Model for MultiRegister {
    type State = Vec<u32>;
    type Input = MultiOp;

    fn name(&self) -> &str {
        "multi-register"
    }

    fn decode(&mut self, op: &Op) -> Result<Option<MultiOp>, String> {
        let mut micro = self.micro_ops(op)?;
        if self.knossos {
            micro.retain(|m| m.write || m.value != 0);
            if micro.is_empty() {
                return Ok(None);
            }
        }
        if op.is_info() {
            micro.retain(|m| m.write);
            if micro.is_empty() {
                return Ok(None);
            }
        }
        Ok(Some(MultiOp(micro)))
    }

    fn partition(&self, _op: &Op) -> Option<String> {
        None
    }

    fn init(&self, _partition: Option<&str>) -> Vec<u32> {
        self.names
            .iter()
            .map(|k| self.per_key.get(k).copied().unwrap_or(self.initial))
            .collect()
    }

    fn step(&self, state: &Vec<u32>, input: &MultiOp) -> Option<Vec<u32>> {
        let mut next: Option<Vec<u32>> = None;
        for m in &input.0 {
            let current = next.as_deref().unwrap_or(state);
            if m.write {
                if current[m.key as usize] != m.value {
                    next.get_or_insert_with(|| state.clone())[m.key as usize] = m.value;
                }
            } else if current[m.key as usize] != m.value {
                return None;
            }
        }
        Some(next.unwrap_or_else(|| state.clone()))
    }

    fn is_read_only(&self, input: &MultiOp) -> bool {
        input.0.iter().all(|m| !m.write)
    }

    fn describe_op(&self, input: &MultiOp) -> String {
        let parts = input.0.iter().map(|m| {
            format!(
                "{} {} {}",
                if m.write { "write" } else { "read" },
                self.names[m.key as usize],
                self.values.show(m.value)
            )
        });
        format!("txn {}", show_list(parts, "[", "]"))
    }

    /// Per register, the values no micro-op reads are merged into [`super::UNOBSERVED`], as
    /// for [`super::Register`]: a read compares its register with a value some op reads, a
    /// write compares nothing, so no sequence of ops tells the merged values apart.
    fn simplify_partition(&self, init: &mut Vec<u32>, inputs: &mut [MultiOp]) {
        let observed: rustc_hash::FxHashSet<(u32, u32)> = inputs
            .iter()
            .flat_map(|op| op.0.iter())
            .filter(|m| !m.write)
            .map(|m| (m.key, m.value))
            .collect();
        let merge = |key: u32, value: &mut u32| {
            if !observed.contains(&(key, *value)) {
                *value = super::UNOBSERVED;
            }
        };
        for (key, value) in init.iter_mut().enumerate() {
            merge(key as u32, value);
        }
        for m in inputs.iter_mut().flat_map(|op| op.0.iter_mut()) {
            if m.write {
                merge(m.key, &mut m.value);
            }
        }
    }

    fn describe_state(&self, state: &Vec<u32>) -> String {
        let parts = state
            .iter()
            .enumerate()
            .map(|(k, &v)| format!("{}: {}", self.names[k], self.values.show(v)));
        format!("the registers hold {}", show_list(parts, "{", "}"))
    }

    fn state_bytes(&self, state: &Vec<u32>) -> usize {
        std::mem::size_of::<Vec<u32>>() + state.capacity() * 4
    }
}
