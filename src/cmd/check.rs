//! `faultline check`: placeholder until the CLI lands in this session.
