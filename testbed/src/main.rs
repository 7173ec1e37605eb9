//! `faultline-testbed`: one node of the calibrated testbed (see [`testbed::cli`]).
//!
//! Exit codes: 0 after SIGTERM / Ctrl-C, 3 on a start-up error (printed as one line).

fn main() {
    std::process::exit(testbed::cli::main_with_args(std::env::args_os()));
}
