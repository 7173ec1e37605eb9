//! Likely causes of a register partition that is not linearizable, named from the history's
//! ops alone.
//!
//! The search proves *that* no order exists; a person wants to know *why*. For registers four
//! shapes explain most real failures, and each can be recognised from the ops' values and
//! real-time intervals without another search:
//!
//! - **read of an unwritten value**: a read returned a value that no write (acknowledged or
//!   not) invoked before the read completed could have produced, and that is not the initial
//!   value;
//! - **failed cas**: the op the search could not place is a failed cas (an observed mismatch)
//!   that no order of the other ops explains;
//! - **lost write**: an acknowledged write that no read or cas ever observed, while a read
//!   invoked after the write completed returned an *older* value (one whose every write
//!   completed before the lost write was invoked, or the initial value);
//! - **stale read**: a read returned a value that a write of another value had certainly
//!   replaced: that write was invoked after every write of the value read completed, and
//!   completed before the read was invoked.
//!
//! "Every write of the value" means every write that could have produced the read: one invoked
//! before the read completed (a value written again later cannot excuse an earlier read).
//!
//! Each shape is a sufficient witness of non-linearizability on its own, so naming one never
//! contradicts the search; it is only a *likely* cause because a partition may hold several.
//! They are tried in the order above (a lost write is the better story than the stale reads it
//! causes). Every test is O(n log n) in the partition's ops, so a partition of a million ops is
//! diagnosed in well under a second.

use std::collections::HashMap;
use std::hash::Hash;

/// The kinds of likely cause, as `data.cause` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    /// A read of a value no write produced.
    UnwrittenRead,
    /// A failed cas that no order of the other ops explains.
    FailedCas,
    /// An acknowledged write never observed, while later reads saw older values.
    LostWrite,
    /// A read of a value already replaced by a write completed before the read began.
    StaleRead,
}

impl CauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::UnwrittenRead => "read-of-unwritten-value",
            CauseKind::FailedCas => "failed-cas",
            CauseKind::LostWrite => "lost-write",
            CauseKind::StaleRead => "stale-read",
        }
    }
}

/// A likely cause: its kind and the ops (partition positions) that show it, in the order the
/// kind defines: `UnwrittenRead`: the read; `FailedCas`: the cas; `LostWrite`: the write, then
/// a later read; `StaleRead`: the read, then the replacing write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub kind: CauseKind,
    pub ops: Vec<usize>,
}

/// A register op as the diagnosis sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterView<V> {
    Read(V),
    Write(V),
    /// A cas that swapped (ok) or may have (info): it observed `old` and produced `new`.
    Cas(V, V),
    /// A cas that observed a value other than `old`.
    CasFailed(V),
}

/// One op of the partition: its view, its invocation and completion positions (`None` for an
/// indeterminate op), in the partition's order.
pub struct Seen<V> {
    pub view: RegisterView<V>,
    pub call: u64,
    pub ret: Option<u64>,
}

/// The likely cause of a register partition's failure, if one of the four shapes fits.
/// `unplaceable` is the op the search could not place, preferred as the witness.
pub fn register_cause<V: Eq + Hash + Clone>(
    initial: &V,
    ops: &[Seen<V>],
    unplaceable: Option<usize>,
) -> Option<Cause> {
    // A value's age as a read sees it: one past the last completion of any write of it that
    // could have produced the read (one invoked before the read completed; u64::MAX when such a
    // write may still be pending); 0 for the initial value, written before everything. A value
    // of age `a` is certainly written before any op invoked at `a` or later. Per value: its
    // writes by invocation, with the running maximum of their ages.
    let mut writes_of: HashMap<&V, Vec<(u64, u64)>> = HashMap::new();
    for op in ops {
        let new = match &op.view {
            RegisterView::Write(v) | RegisterView::Cas(_, v) => v,
            _ => continue,
        };
        let age = op.ret.map_or(u64::MAX, |r| r.saturating_add(1));
        writes_of.entry(new).or_default().push((op.call, age));
    }
    for list in writes_of.values_mut() {
        list.sort_unstable();
        let mut max = 0;
        for entry in list.iter_mut() {
            max = max.max(entry.1);
            entry.1 = max;
        }
    }
    // The age of `v` for a read that completed at `before`; `None`: nothing could have
    // produced it by then.
    let age_for = |v: &V, before: u64| -> Option<u64> {
        let list = writes_of.get(v).map_or(&[][..], Vec::as_slice);
        let k = list.partition_point(|&(call, _)| call < before);
        match (k, v == initial) {
            (0, true) => Some(0),
            (0, false) => None,
            (k, _) => Some(list[k - 1].1),
        }
    };
    let reads: Vec<usize> = (0..ops.len())
        .filter(|&i| matches!(ops[i].view, RegisterView::Read(_)) && ops[i].ret.is_some())
        .collect();
    let read_value = |i: usize| match &ops[i].view {
        RegisterView::Read(v) => v,
        _ => unreachable!("a read"),
    };

    // 1. A read of a value no write produced.
    let read_age = |i: usize| age_for(read_value(i), ops[i].ret.expect("a completed read"));
    let unwritten = |i: usize| read_age(i).is_none();
    if let Some(i) = unplaceable
        .filter(|i| reads.contains(i))
        .filter(|&i| unwritten(i))
        .or_else(|| reads.iter().copied().find(|&i| unwritten(i)))
    {
        return Some(Cause {
            kind: CauseKind::UnwrittenRead,
            ops: vec![i],
        });
    }

    // 2. The failed cas the search could not place.
    if let Some(i) = unplaceable {
        if matches!(ops[i].view, RegisterView::CasFailed(_)) {
            return Some(Cause {
                kind: CauseKind::FailedCas,
                ops: vec![i],
            });
        }
    }

    // 3. A lost write: reads by invocation, with the suffix minimum of the last completion of
    // the value each read (the "oldest" value read from a position on).
    let mut by_call: Vec<(u64, u64, usize)> = reads
        .iter()
        .map(|&i| (ops[i].call, read_age(i).unwrap_or(0), i))
        .collect();
    by_call.sort_unstable();
    let mut oldest_from = vec![(u64::MAX, usize::MAX); by_call.len() + 1];
    for k in (0..by_call.len()).rev() {
        let (_, age, i) = by_call[k];
        oldest_from[k] = if age <= oldest_from[k + 1].0 {
            (age, i)
        } else {
            oldest_from[k + 1]
        };
    }
    let observed: std::collections::HashSet<&V> = ops
        .iter()
        .filter(|o| o.ret.is_some())
        .filter_map(|o| match &o.view {
            RegisterView::Read(v) | RegisterView::Cas(v, _) => Some(v),
            _ => None,
        })
        .collect();
    for (w, op) in ops.iter().enumerate() {
        let (RegisterView::Write(v) | RegisterView::Cas(_, v)) = &op.view else {
            continue;
        };
        let Some(ret) = op.ret else { continue };
        if observed.contains(v) {
            continue;
        }
        let from = by_call.partition_point(|&(call, _, _)| call <= ret);
        let (age, r) = oldest_from[from];
        if r != usize::MAX && age <= op.call {
            return Some(Cause {
                kind: CauseKind::LostWrite,
                ops: vec![w, r],
            });
        }
    }

    // 4. A stale read: acknowledged writes by completion, with the prefix maximum of their
    // invocations for the two latest-invoked distinct values (a read of one of them needs the
    // other).
    let mut writes: Vec<(u64, u64, &V, usize)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match (&o.view, o.ret) {
            (RegisterView::Write(v) | RegisterView::Cas(_, v), Some(ret)) => {
                Some((ret, o.call, v, i))
            }
            _ => None,
        })
        .collect();
    writes.sort_unstable_by_key(|&(ret, call, _, i)| (ret, call, i));
    // top[k]: the latest-invoked write among the first k, and the latest-invoked one of
    // another value.
    type Top<'a, V> = (Option<(u64, &'a V, usize)>, Option<(u64, &'a V, usize)>);
    let mut tops: Vec<Top<'_, V>> = Vec::with_capacity(writes.len() + 1);
    tops.push((None, None));
    for &(_, call, v, i) in &writes {
        let (a, b) = *tops.last().expect("starts with one");
        let next = match a {
            None => (Some((call, v, i)), None),
            Some(first) if call > first.0 => {
                if first.1 == v {
                    (Some((call, v, i)), b)
                } else {
                    (Some((call, v, i)), Some(first))
                }
            }
            Some(first) => {
                if first.1 != v && b.is_none_or(|second| call > second.0) {
                    (Some(first), Some((call, v, i)))
                } else {
                    (Some(first), b)
                }
            }
        };
        tops.push(next);
    }
    let stale = |r: usize| -> Option<usize> {
        let v = read_value(r);
        let age = read_age(r)?;
        let k = writes.partition_point(|&(ret, _, _, _)| ret < ops[r].call);
        let (a, b) = tops[k];
        let other = match a {
            Some(first) if first.1 != v => Some(first),
            _ => b,
        }?;
        (other.0 >= age).then_some(other.2)
    };
    let witness = unplaceable
        .filter(|i| reads.contains(i))
        .and_then(|r| stale(r).map(|w| (r, w)))
        .or_else(|| reads.iter().find_map(|&r| stale(r).map(|w| (r, w))));
    witness.map(|(r, w)| Cause {
        kind: CauseKind::StaleRead,
        ops: vec![r, w],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegisterView::*;

    fn op(view: RegisterView<u32>, call: u64, ret: Option<u64>) -> Seen<u32> {
        Seen { view, call, ret }
    }

    #[test]
    fn a_read_of_a_value_never_written() {
        let ops = [op(Write(1), 0, Some(1)), op(Read(7), 2, Some(3))];
        let cause = register_cause(&0, &ops, Some(1)).unwrap();
        assert_eq!(cause.kind, CauseKind::UnwrittenRead);
        assert_eq!(cause.ops, [1]);
        // The initial value and a value an unanswered write may have produced are written.
        let ops = [
            op(Write(7), 0, None),
            op(Read(7), 2, Some(3)),
            op(Read(0), 4, Some(5)),
        ];
        assert_eq!(register_cause(&0, &ops, None), None);
    }

    #[test]
    fn a_lost_write_is_never_read_while_later_reads_see_older_values() {
        // write 1 done; write 5 acknowledged; a read invoked afterwards still sees 1.
        let ops = [
            op(Write(1), 0, Some(1)),
            op(Write(5), 2, Some(3)),
            op(Read(1), 4, Some(5)),
        ];
        let cause = register_cause(&0, &ops, Some(2)).unwrap();
        assert_eq!(cause.kind, CauseKind::LostWrite);
        assert_eq!(cause.ops, [1, 2]);
    }

    #[test]
    fn a_stale_read_sees_a_value_replaced_before_it_began() {
        // 5 was read once (not lost), then a later read sees 1 again.
        let ops = [
            op(Write(1), 0, Some(1)),
            op(Write(5), 2, Some(3)),
            op(Read(5), 4, Some(5)),
            op(Read(1), 6, Some(7)),
        ];
        let cause = register_cause(&0, &ops, Some(3)).unwrap();
        assert_eq!(cause.kind, CauseKind::StaleRead);
        assert_eq!(cause.ops, [3, 1]);
        // Overlapping writes: either order is possible, so no stale read.
        let ops = [
            op(Write(1), 0, Some(3)),
            op(Write(5), 2, Some(4)),
            op(Read(5), 5, Some(6)),
            op(Read(1), 7, Some(8)),
        ];
        assert_eq!(register_cause(&0, &ops, Some(3)), None);
    }

    #[test]
    fn only_writes_invoked_before_the_read_completed_could_have_produced_it() {
        // 7 is read before any write of 7 began: unwritten then.
        let ops = [op(Read(7), 0, Some(1)), op(Write(7), 2, Some(3))];
        let cause = register_cause(&0, &ops, Some(0)).unwrap();
        assert_eq!(cause.kind, CauseKind::UnwrittenRead);
        // 1 was replaced by 5 before the read began; writing 1 again later does not excuse it.
        let ops = [
            op(Write(1), 0, Some(1)),
            op(Write(5), 2, Some(3)),
            op(Read(5), 4, Some(5)),
            op(Read(1), 6, Some(7)),
            op(Write(1), 8, Some(9)),
        ];
        let cause = register_cause(&0, &ops, Some(3)).unwrap();
        assert_eq!(cause.kind, CauseKind::StaleRead);
        assert_eq!(cause.ops, [3, 1]);
    }

    #[test]
    fn a_failed_cas_the_search_could_not_place() {
        let ops = [op(Write(2), 0, Some(1)), op(CasFailed(2), 2, Some(3))];
        let cause = register_cause(&0, &ops, Some(1)).unwrap();
        assert_eq!(cause.kind, CauseKind::FailedCas);
    }
}
