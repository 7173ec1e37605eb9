//! `register` and `cas-register`: one value per key, read / write (/ cas).
//!
//! A read returns the value (nil: never written). A write sets it. A cas `[old new]` sets `new`
//! and succeeds only when the register holds `old`. An unanswered cas may have swapped or not.
//!
//! What a failed cas means depends on who recorded it, so the op says it: a `fail` whose error
//! is `cas-mismatch` is an observed compare failure: it changed nothing and saw a value other
//! than `old` at some instant of its interval (faultline's clients write that error only after
//! a real comparison; the Jepsen log reader marks a failed cas so, as Porcupine reads etcd
//! logs). Any other failed cas only did not take effect, Jepsen's meaning of `:fail`, and
//! proves nothing: it is dropped like every other failed op.
//!
//! [`Register::knossos`] reads as Knossos does: every failed op is dropped, and a read of nil
//! means "value unknown" (Knossos's register models accept it in any state).

use super::{input_value, unknown_f, Interner};
use crate::linear::cause::RegisterView;
use crate::linear::Model;
use crate::Op;
use serde_json::Value;

/// The register models; states are interned value ids.
#[derive(Debug, Clone)]
pub struct Register {
    cas: bool,
    /// Knossos's conventions: failed ops dropped, nil reads tell nothing.
    knossos: bool,
    values: Interner,
    initial: u32,
}

/// The error with which a failed cas says it observed another value than its `old`.
pub const CAS_MISMATCH: &str = "cas-mismatch";

/// A register operation; values are ids of the model's [`Interner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    Read(u32),
    Write(u32),
    /// A cas that swapped (ok) or may have (info).
    Cas(u32, u32),
    /// A cas that found another value than the first and changed nothing.
    CasFailed(u32, u32),
}

impl Register {
    /// `cas`: accept compare-and-set ops. `initial`: the value of every key before any write
    /// (default nil).
    pub fn new(cas: bool, initial: Option<&Value>) -> Self {
        let mut values = Interner::default();
        let initial = initial.map_or(0, |v| values.id(v));
        Register {
            cas,
            knossos: false,
            values,
            initial,
        }
    }

    /// Knossos's conventions (see the module docs).
    pub fn knossos(mut self) -> Self {
        self.knossos = true;
        self
    }

    fn cas_args(&mut self, op: &Op) -> Result<(u32, u32), String> {
        match input_value(op) {
            Value::Array(pair) if pair.len() == 2 => {
                Ok((self.values.id(&pair[0]), self.values.id(&pair[1])))
            }
            other => Err(format!(
                "a cas value must be [old new], got {}",
                super::show_value(other)
            )),
        }
    }
}

impl Model for Register {
    type State = u32;
    type Input = RegisterOp;

    fn name(&self) -> &str {
        if self.cas {
            "cas-register"
        } else {
            "register"
        }
    }

    fn decode(&mut self, op: &Op) -> Result<Option<RegisterOp>, String> {
        match op.f.as_str() {
            "read" if op.is_info() => Ok(None),
            "read" if self.knossos && op.value().is_null() => Ok(None),
            "read" => Ok(Some(RegisterOp::Read(self.values.id(op.value())))),
            "write" => Ok(Some(RegisterOp::Write(self.values.id(input_value(op))))),
            "cas" if self.cas => {
                let (old, new) = self.cas_args(op)?;
                Ok(Some(RegisterOp::Cas(old, new)))
            }
            "cas" => Err(
                "cas is not an operation of the register model; use --model cas-register"
                    .to_string(),
            ),
            _ => Err(unknown_f(
                op,
                self.name(),
                if self.cas {
                    "read, write or cas"
                } else {
                    "read or write"
                },
            )),
        }
    }

    fn decode_failed(&mut self, op: &Op) -> Result<Option<RegisterOp>, String> {
        let observed = !self.knossos && op.error.as_deref() == Some(CAS_MISMATCH);
        if op.f == "cas" && self.cas && observed {
            let (old, new) = self.cas_args(op)?;
            return Ok(Some(RegisterOp::CasFailed(old, new)));
        }
        Ok(None)
    }

    fn init(&self, _partition: Option<&str>) -> u32 {
        self.initial
    }

    #[inline]
    fn step(&self, &state: &u32, input: &RegisterOp) -> Option<u32> {
        match *input {
            RegisterOp::Read(v) => (state == v).then_some(state),
            RegisterOp::Write(v) => Some(v),
            RegisterOp::Cas(old, new) => (state == old).then_some(new),
            RegisterOp::CasFailed(old, _) => (state != old).then_some(state),
        }
    }

    fn is_read_only(&self, input: &RegisterOp) -> bool {
        matches!(input, RegisterOp::Read(_) | RegisterOp::CasFailed(..))
    }

    fn is_blind(&self, input: &RegisterOp) -> bool {
        matches!(input, RegisterOp::Write(_))
    }

    fn register_view(&self, input: &RegisterOp) -> Option<RegisterView<u32>> {
        Some(match *input {
            RegisterOp::Read(v) => RegisterView::Read(v),
            RegisterOp::Write(v) => RegisterView::Write(v),
            RegisterOp::Cas(old, new) => RegisterView::Cas(old, new),
            RegisterOp::CasFailed(old, _) => RegisterView::CasFailed(old),
        })
    }

    fn describe_op(&self, input: &RegisterOp) -> String {
        let v = |id| self.values.show(id);
        match *input {
            RegisterOp::Read(x) => format!("read {}", v(x)),
            RegisterOp::Write(x) => format!("write {}", v(x)),
            RegisterOp::Cas(old, new) => format!("cas [{} {}]", v(old), v(new)),
            RegisterOp::CasFailed(old, new) => format!(
                "failed cas [{} {}] (it saw a value other than {})",
                v(old),
                v(new),
                v(old)
            ),
        }
    }

    /// Values no op reads or compares are merged into [`UNOBSERVED`]. Every step compares the
    /// state with a value some op reads or compares (a read's value, a cas's `old`), or with
    /// nothing (a write); for such a value `x`, `state == x` holds exactly when
    /// `merged(state) == x`, as `UNOBSERVED` is none of them. So by induction over any
    /// sequence of ops, the merged run holds `merged(state)` after each step and accepts the
    /// same steps as the original run.
    fn simplify_partition(&self, init: &mut u32, inputs: &mut [RegisterOp]) {
        let observed: rustc_hash::FxHashSet<u32> = inputs
            .iter()
            .filter_map(|i| match *i {
                RegisterOp::Read(v) | RegisterOp::Cas(v, _) | RegisterOp::CasFailed(v, _) => {
                    Some(v)
                }
                RegisterOp::Write(_) => None,
            })
            .collect();
        let written = inputs.iter_mut().filter_map(|i| match i {
            RegisterOp::Write(v) | RegisterOp::Cas(_, v) => Some(v),
            RegisterOp::Read(_) | RegisterOp::CasFailed(..) => None,
        });
        super::merge_unobserved(&observed, std::iter::once(init).chain(written));
    }

    fn describe_state(&self, &state: &u32) -> String {
        if state == super::UNOBSERVED {
            "the register holds a value that no op reads or compares".to_string()
        } else if state == 0 {
            "the register holds nil (never written)".to_string()
        } else {
            format!("the register holds {}", self.values.show(state))
        }
    }
}
