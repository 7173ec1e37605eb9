//! The convergence check's vocabulary. The check itself lives in the `faultline` crate
//! (`faultline::convergence`), since it reads every node of a live cluster; only its name and
//! its anomaly kinds live here, so that [`crate::kind_meaning`] knows every kind any result
//! can carry and reports need no dependency on the harness.

use crate::stream::AnomalyKind;

/// The checker's name in results and reports.
pub const CHECKER: &str = "convergence";

/// Every kind the convergence check reports (docs/testbed.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Once quiescent, a node holds another value for a key than most nodes do.
    Diverged,
}

impl AnomalyKind for Kind {
    type Rule = ();

    const ALL: &'static [Kind] = &[Kind::Diverged];

    fn name(self) -> &'static str {
        match self {
            Kind::Diverged => "diverged",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::Diverged => {
                "once quiescent, a node holds another value for a key (or none) than most nodes"
            }
        }
    }

    fn counts(self, _: ()) -> bool {
        match self {
            Kind::Diverged => true,
        }
    }
}
