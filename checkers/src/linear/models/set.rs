//! `set`: add elements, read the whole set (Knossos's set). A read must return exactly the
//! elements added so far; one partition per key.

use super::{input_value, show_list, unknown_f, Interner};
use crate::linear::Model;
use crate::Op;
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct Set {
    values: Interner,
    initial: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOp {
    Add(u32),
    /// A read that returned these elements (sorted ids, no duplicates).
    Read(Vec<u32>),
}

impl Set {
    /// `initial`: the elements at the start (default empty).
    pub fn new(initial: Option<&Value>) -> Result<Self, String> {
        let mut set = Set::default();
        match initial {
            None => {}
            Some(Value::Array(items)) => {
                set.initial = items.iter().map(|v| set.values.id(v)).collect();
                set.initial.sort_unstable();
                set.initial.dedup();
            }
            Some(other) => {
                return Err(format!(
                    "the set model's --initial must be a list of elements, got {other}"
                ))
            }
        }
        Ok(set)
    }
}

impl Model for Set {
    /// The elements' ids, sorted.
    type State = Vec<u32>;
    type Input = SetOp;

    fn name(&self) -> &str {
        "set"
    }

    fn decode(&mut self, op: &Op) -> Result<Option<SetOp>, String> {
        match op.f.as_str() {
            "add" => Ok(Some(SetOp::Add(self.values.id(input_value(op))))),
            "read" if op.is_info() => Ok(None),
            "read" => match op.value() {
                Value::Array(items) => {
                    let mut ids: Vec<u32> = items.iter().map(|v| self.values.id(v)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    Ok(Some(SetOp::Read(ids)))
                }
                other => Err(format!(
                    "a set read must return a list of elements, got {other}"
                )),
            },
            _ => Err(unknown_f(op, "set", "add or read")),
        }
    }

    fn init(&self, _partition: Option<&str>) -> Vec<u32> {
        self.initial.clone()
    }

    fn step(&self, state: &Vec<u32>, input: &SetOp) -> Option<Vec<u32>> {
        match input {
            SetOp::Add(v) => match state.binary_search(v) {
                Ok(_) => Some(state.clone()),
                Err(at) => {
                    let mut next = state.clone();
                    next.insert(at, *v);
                    Some(next)
                }
            },
            SetOp::Read(seen) => (seen == state).then(|| state.clone()),
        }
    }

    fn is_read_only(&self, input: &SetOp) -> bool {
        matches!(input, SetOp::Read(_))
    }

    fn describe_op(&self, input: &SetOp) -> String {
        match input {
            SetOp::Add(v) => format!("add {}", self.values.show(*v)),
            SetOp::Read(seen) => format!(
                "read {}",
                show_list(seen.iter().map(|&v| self.values.show(v)), "#{", "}")
            ),
        }
    }

    fn describe_state(&self, state: &Vec<u32>) -> String {
        let items = state.iter().map(|&v| self.values.show(v));
        format!("the set holds {}", show_list(items, "#{", "}"))
    }

    fn state_bytes(&self, state: &Vec<u32>) -> usize {
        std::mem::size_of::<Vec<u32>>() + state.capacity() * 4
    }
}
