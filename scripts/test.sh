#!/usr/bin/env bash
# Runs every check and test of PVE App Store: formatting, clippy, and the whole test suite.
# APPSTORE_REQUIRE_LXC=1 / APPSTORE_REQUIRE_BROWSER=1 / APPSTORE_REQUIRE_SHARED=1 turn a missing
# prerequisite of the LXC (root and its tools), browser and real-schema (../shared) tests into a
# failure instead of a skip (CI sets all three).
set -euo pipefail
cd "$(dirname "$0")/.."
BOOTSTRAP_TEST=1 source scripts/bootstrap.sh

# playwright-core for the browser tests (tests/browser), pinned by its lock file; it drives the
# system's Chromium and downloads no browser.
if [[ ! -d tests/browser/node_modules/playwright-core ]] && command -v npm >/dev/null 2>&1; then
    echo "== npm ci (tests/browser)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
# --all-features: the demo (appstore-web's `demo`, which the web and browser tests run) and the
# test hooks; a release build of the service has neither.
cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
echo "== cargo build (every binary: the installer test runs them inside a container)"
cargo build --locked --workspace --all-features --bins
echo "== the Debian package (of this test build)"
PROFILE=dev FEATURES=--all-features bash scripts/package.sh --quiet
echo "== cargo test"
cargo test --locked --workspace --all-features
