//! `kv`: a map from keys to strings with get / put / append, one partition per key (the model
//! of Porcupine's key-value histories). A get of a key never written returns "".

use super::{input_value, shorten, unknown_f};
use crate::linear::cause::RegisterView;
use crate::linear::Model;
use crate::Op;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Kv {
    /// The value of every key before any put; `per_key` overrides it.
    initial: String,
    per_key: HashMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    /// A get that returned this value.
    Get(String),
    Put(String),
    Append(String),
}

fn text(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{what} must be a string, got {other}")),
    }
}

impl Kv {
    /// `initial`: a string for every key, or an object of key -> string (default "").
    pub fn new(initial: Option<&Value>) -> Result<Self, String> {
        let mut kv = Kv::default();
        match initial {
            None => {}
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    kv.per_key
                        .insert(k.clone(), text(v, "an --initial value of the kv model")?);
                }
            }
            Some(v) => kv.initial = text(v, "the kv model's --initial")?,
        }
        Ok(kv)
    }
}

impl Model for Kv {
    type State = String;
    type Input = KvOp;

    fn name(&self) -> &str {
        "kv"
    }

    fn decode(&mut self, op: &Op) -> Result<Option<KvOp>, String> {
        match op.f.as_str() {
            "get" if op.is_info() => Ok(None),
            "get" => Ok(Some(KvOp::Get(text(op.value(), "a get's value")?))),
            "put" => Ok(Some(KvOp::Put(text(input_value(op), "a put's value")?))),
            "append" => Ok(Some(KvOp::Append(text(
                input_value(op),
                "an append's value",
            )?))),
            _ => Err(unknown_f(op, "kv", "get, put or append")),
        }
    }

    fn init(&self, partition: Option<&str>) -> String {
        partition
            .and_then(|k| self.per_key.get(k))
            .unwrap_or(&self.initial)
            .clone()
    }

    fn step(&self, state: &String, input: &KvOp) -> Option<String> {
        match input {
            KvOp::Get(v) => (v == state).then(|| state.clone()),
            KvOp::Put(v) => Some(v.clone()),
            KvOp::Append(v) => {
                let mut s = String::with_capacity(state.len() + v.len());
                s.push_str(state);
                s.push_str(v);
                Some(s)
            }
        }
    }

    fn is_read_only(&self, input: &KvOp) -> bool {
        matches!(input, KvOp::Get(_))
    }

    fn register_view(&self, input: &KvOp) -> Option<RegisterView<String>> {
        match input {
            KvOp::Get(v) => Some(RegisterView::Read(v.clone())),
            KvOp::Put(v) => Some(RegisterView::Write(v.clone())),
            KvOp::Append(_) => None,
        }
    }

    fn describe_op(&self, input: &KvOp) -> String {
        match input {
            KvOp::Get(v) => format!("get {:?}", shorten(v)),
            KvOp::Put(v) => format!("put {:?}", shorten(v)),
            KvOp::Append(v) => format!("append {:?}", shorten(v)),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("the value is {:?}", shorten(state))
    }

    fn state_bytes(&self, state: &String) -> usize {
        std::mem::size_of::<String>() + state.capacity()
    }
}
