//! One module per subcommand. Each has an `Args` (clap) and a `run` returning the exit code.

pub mod check;
pub mod run;
pub mod convert;
pub mod report;
pub mod proxy;
pub mod images;
pub mod clean;
pub mod cluster;
