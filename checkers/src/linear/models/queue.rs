//! `fifo-queue` and `unordered-queue`: enqueue / dequeue, one partition per key.
//!
//! A dequeue that returned nil (ok) saw the queue empty. An unanswered dequeue may have removed
//! an element or not: for the FIFO queue it is the head, for the unordered queue any element
//! (the model lists every possibility through [`Model::branches`]). A failed dequeue (Jepsen's
//! answer for an empty queue) did not happen.

use super::{input_value, show_list, unknown_f, Interner};
use crate::linear::Model;
use crate::Op;
use serde_json::Value;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOp {
    Enqueue(u32),
    /// A dequeue that returned this element.
    Dequeue(u32),
    /// A dequeue that found the queue empty.
    DequeueEmpty,
    /// A dequeue that got no answer.
    DequeueUnknown,
}

fn initial_elements(values: &mut Interner, initial: Option<&Value>) -> Result<Vec<u32>, String> {
    match initial {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.iter().map(|v| values.id(v)).collect()),
        Some(other) => Err(format!(
            "a queue's --initial must be a list of elements, got {other}"
        )),
    }
}

fn decode(values: &mut Interner, op: &Op, model: &str) -> Result<Option<QueueOp>, String> {
    match op.f.as_str() {
        "enqueue" => Ok(Some(QueueOp::Enqueue(values.id(input_value(op))))),
        "dequeue" if op.is_info() => Ok(Some(QueueOp::DequeueUnknown)),
        "dequeue" => Ok(Some(match op.value() {
            Value::Null => QueueOp::DequeueEmpty,
            v => QueueOp::Dequeue(values.id(v)),
        })),
        _ => Err(unknown_f(op, model, "enqueue or dequeue")),
    }
}

fn describe(values: &Interner, input: &QueueOp) -> String {
    match *input {
        QueueOp::Enqueue(v) => format!("enqueue {}", values.show(v)),
        QueueOp::Dequeue(v) => format!("dequeue {}", values.show(v)),
        QueueOp::DequeueEmpty => "dequeue (found the queue empty)".to_string(),
        QueueOp::DequeueUnknown => "dequeue (no answer)".to_string(),
    }
}

/// A first-in first-out queue.
#[derive(Debug, Clone, Default)]
pub struct FifoQueue {
    values: Interner,
    initial: Vec<u32>,
}

impl FifoQueue {
    /// `initial`: the elements in the queue at the start, head first (default empty).
    pub fn new(initial: Option<&Value>) -> Result<Self, String> {
        let mut values = Interner::default();
        let initial = initial_elements(&mut values, initial)?;
        Ok(FifoQueue { values, initial })
    }
}

impl Model for FifoQueue {
    type State = VecDeque<u32>;
    type Input = QueueOp;

    fn name(&self) -> &str {
        "fifo-queue"
    }

    fn decode(&mut self, op: &Op) -> Result<Option<QueueOp>, String> {
        decode(&mut self.values, op, "fifo-queue")
    }

    fn init(&self, _partition: Option<&str>) -> VecDeque<u32> {
        self.initial.iter().copied().collect()
    }

    fn step(&self, state: &VecDeque<u32>, input: &QueueOp) -> Option<VecDeque<u32>> {
        match *input {
            QueueOp::Enqueue(v) => {
                let mut next = state.clone();
                next.push_back(v);
                Some(next)
            }
            QueueOp::Dequeue(v) => (state.front() == Some(&v)).then(|| {
                let mut next = state.clone();
                next.pop_front();
                next
            }),
            QueueOp::DequeueEmpty => state.is_empty().then(|| state.clone()),
            QueueOp::DequeueUnknown => {
                let mut next = state.clone();
                next.pop_front();
                Some(next)
            }
        }
    }

    fn is_read_only(&self, input: &QueueOp) -> bool {
        matches!(input, QueueOp::DequeueEmpty)
    }

    fn describe_op(&self, input: &QueueOp) -> String {
        describe(&self.values, input)
    }

    fn describe_state(&self, state: &VecDeque<u32>) -> String {
        let items = state.iter().map(|&v| self.values.show(v));
        format!(
            "the queue holds {} (head first)",
            show_list(items, "[", "]")
        )
    }

    fn state_bytes(&self, state: &VecDeque<u32>) -> usize {
        std::mem::size_of::<VecDeque<u32>>() + state.capacity() * 4
    }
}

/// A queue that hands out its elements in any order (a multiset).
#[derive(Debug, Clone, Default)]
pub struct UnorderedQueue {
    values: Interner,
    initial: Vec<u32>,
}

impl UnorderedQueue {
    /// `initial`: the elements in the queue at the start (default empty).
    pub fn new(initial: Option<&Value>) -> Result<Self, String> {
        let mut values = Interner::default();
        let mut initial = initial_elements(&mut values, initial)?;
        initial.sort_unstable();
        Ok(UnorderedQueue { values, initial })
    }
}

impl Model for UnorderedQueue {
    /// The elements, sorted (a multiset).
    type State = Vec<u32>;
    type Input = QueueOp;

    fn name(&self) -> &str {
        "unordered-queue"
    }

    fn decode(&mut self, op: &Op) -> Result<Option<QueueOp>, String> {
        decode(&mut self.values, op, "unordered-queue")
    }

    fn init(&self, _partition: Option<&str>) -> Vec<u32> {
        self.initial.clone()
    }

    fn step(&self, state: &Vec<u32>, input: &QueueOp) -> Option<Vec<u32>> {
        match *input {
            QueueOp::Enqueue(v) => {
                let mut next = state.clone();
                let at = next.partition_point(|&x| x <= v);
                next.insert(at, v);
                Some(next)
            }
            QueueOp::Dequeue(v) => state.binary_search(&v).ok().map(|at| {
                let mut next = state.clone();
                next.remove(at);
                next
            }),
            QueueOp::DequeueEmpty => state.is_empty().then(|| state.clone()),
            // Decided by `branches`.
            QueueOp::DequeueUnknown => None,
        }
    }

    fn branches(&self, state: &Vec<u32>, input: &QueueOp) -> Option<Vec<Vec<u32>>> {
        if *input != QueueOp::DequeueUnknown {
            return None;
        }
        if state.is_empty() {
            return Some(vec![state.clone()]);
        }
        let mut out = Vec::new();
        for (at, v) in state.iter().enumerate() {
            if at > 0 && state[at - 1] == *v {
                continue;
            }
            let mut next = state.clone();
            next.remove(at);
            out.push(next);
        }
        Some(out)
    }

    fn is_read_only(&self, input: &QueueOp) -> bool {
        matches!(input, QueueOp::DequeueEmpty)
    }

    fn describe_op(&self, input: &QueueOp) -> String {
        describe(&self.values, input)
    }

    fn describe_state(&self, state: &Vec<u32>) -> String {
        let items = state.iter().map(|&v| self.values.show(v));
        format!(
            "the queue holds {} (in any order)",
            show_list(items, "[", "]")
        )
    }

    fn state_bytes(&self, state: &Vec<u32>) -> usize {
        std::mem::size_of::<Vec<u32>>() + state.capacity() * 4
    }
}
