//! `faultline test-all --shard K/N`: which runs of the matrix shard K of N owns.
//!
//! Design decisions:
//! - The CI system is the scheduler. Each of N jobs (a GitHub Actions matrix, GitLab's
//!   `parallel:`) runs `test-all --shard K/N` on a fresh runner with the same plans and master
//!   seed, and `faultline merge` joins their stores. faultline needs no coordinator: the split is
//!   a pure function of the loaded plans, `--test-count` and N, so every shard computes the same
//!   split independently and takes its part.
//! - Seeds do not depend on the split: every shard derives the whole matrix's seeds exactly as an
//!   unsharded `test-all --seed S` does, then runs only its own runs, so the N shards together
//!   are the unsharded matrix, run for run and seed for seed.
//! - Balance by expected duration: a run is expected to take its time limit plus the typical
//!   set-up, final phase and checking time of its kind of system (the same figures `test-all`
//!   assumes under `--time-limit-total` before it has measured anything). Runs go longest first
//!   to the least loaded shard (LPT: within 4/3 of the best split), ties broken by the unsharded
//!   order and the lowest shard index. Loads are integer milliseconds, so the split cannot
//!   depend on floating-point rounding.
//! - A plan file that does not load is an `error` row of shard 1 only, so it is reported once.

use std::fmt;

/// Most shards of one matrix.
pub const SHARD_COUNT_MAX: u32 = 1000;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` (1 <= K <= N <= [`SHARD_COUNT_MAX`]); the error names `--shard`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = |why: &str| {
            format!("--shard {text:?}: {why}; expected K/N with 1 <= K <= N, e.g. --shard 2/4")
        };
        let (k, n) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let k: u32 = k.trim().parse().map_err(|_| bad("K is not a number"))?;
        let n: u32 = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        if n == 0 || n > SHARD_COUNT_MAX {
            return Err(bad(&format!("N must be 1 to {SHARD_COUNT_MAX}")));
        }
        if k == 0 || k > n {
            return Err(bad(&format!("there is no shard {k} of {n}")));
        }
        Ok(Shard { index: k, count: n })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The owner (1-based shard) of every run: `owners[plan][attempt - 1]`, for plans whose runs
/// are each expected to take `expected_ms[plan]`, `test_count` runs per plan, `shard_count`
/// shards. See the module documentation for the rule.
pub fn assign(expected_ms: &[u64], test_count: u32, shard_count: u32) -> Vec<Vec<u32>> {
    assert!(shard_count >= 1, "at least one shard");
    // (expected, attempt, plan): the unsharded order is rounds (attempt), then plan order.
    let mut jobs: Vec<(u64, u32, usize)> = (1..=test_count)
        .flat_map(|attempt| {
            expected_ms
                .iter()
                .enumerate()
                .map(move |(plan, &ms)| (ms, attempt, plan))
        })
        .collect();
    jobs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut load_ms = vec![0u64; shard_count as usize];
    let mut owners = vec![vec![0u32; test_count as usize]; expected_ms.len()];
    for (ms, attempt, plan) in jobs {
        let (shard, _) = load_ms
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .expect("at least one shard");
        load_ms[shard] += ms;
        owners[plan][(attempt - 1) as usize] = shard as u32 + 1;
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_flags_parse_or_name_the_flag() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("1/1").unwrap().to_string(), "1/1");
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2", "", "1/1001"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(e.starts_with("--shard "), "{bad}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn every_run_has_exactly_one_owner_and_long_runs_spread_first() {
        // Two long plans (100 s), three short ones (12 s), two runs each, three shards.
        let expected = [100_000, 12_000, 100_000, 12_000, 12_000];
        let owners = assign(&expected, 2, 3);
        assert_eq!(owners.len(), 5);
        let mut load = [0u64; 3];
        for (plan, runs) in owners.iter().enumerate() {
            assert_eq!(runs.len(), 2);
            for &s in runs {
                assert!((1..=3).contains(&s));
                load[(s - 1) as usize] += expected[plan];
            }
        }
        assert_eq!(load.iter().sum::<u64>(), 472_000);
        // LPT: the four long runs go one per shard first, then the fourth to the least loaded.
        let (max, min) = (*load.iter().max().unwrap(), *load.iter().min().unwrap());
        assert!(max - min <= 100_000, "{load:?}");
        assert_eq!(owners, assign(&expected, 2, 3), "a pure function");
    }

    #[test]
    fn more_shards_than_runs_leaves_some_shards_empty_and_one_shard_owns_everything() {
        let owners = assign(&[5_000, 5_000], 1, 4);
        assert_eq!(owners, [[1], [2]]);
        assert!(assign(&[5_000, 7_000], 3, 1)
            .iter()
            .flatten()
            .all(|&s| s == 1));
    }
}
