//! One module per subcommand. Each has an `Args` (clap) and a `run` returning the exit code.

pub mod calibrate;
pub mod check;
pub mod clean;
pub mod clock_attach;
pub mod cluster;
pub mod convert;
pub mod images;
pub mod init;
pub mod merge;
pub mod proxy;
pub mod report;
pub mod run;
pub mod test_all;
