#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): formatting, lints, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --no-fail-fast
echo "== doctests"
cargo test --workspace --doc --quiet
