#!/usr/bin/env bash
# Runs every check and test of PVE App Store: formatting, clippy, and the whole test suite.
# APPSTORE_REQUIRE_LXC=1 / APPSTORE_REQUIRE_BROWSER=1 turn a missing prerequisite of the LXC and browser
# tests into a failure instead of a skip (CI sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --workspace
