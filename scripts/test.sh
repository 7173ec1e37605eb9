#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): formatting, lints, then every test.
# A test whose prerequisite is missing (Docker, the base image, a server binary, Chromium) fails
# under CI and is skipped elsewhere (testsupport/prereq.rs); the last line counts the skipped
# tests by reason, so a green run on a bare machine does not look like a full one.
set -euo pipefail
cd "$(dirname "$0")/.."
skip_log="$(mktemp -t faultline-skips.XXXXXX)"
export FAULTLINE_SKIP_LOG="$skip_log"
summarize_skips() {
  local n
  n=$(wc -l <"$skip_log")
  if [ "$n" -eq 0 ]; then
    echo "== skipped tests: none"
  else
    echo "== skipped tests: $n ($(cut -f1 "$skip_log" | sort | uniq -c | sort -rn |
      awk '{c=$1; $1=""; sub(/^ /,""); printf "%s%d %s", sep, c, $0; sep=", "}'))"
  fi
  rm -f "$skip_log"
}
trap summarize_skips EXIT
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo nextest"
cargo nextest run --workspace --no-fail-fast
echo "== doctests"
cargo test --workspace --doc --quiet
