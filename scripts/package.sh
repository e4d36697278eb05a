#!/usr/bin/env bash
# Builds the Debian package with cargo-deb: target/debian/pve-appstore_<version>_amd64.deb.
# PROFILE=release (the default, what a node gets) or PROFILE=dev (the test build, quick; the tests
# install it in a container; scripts/test.sh also passes FEATURES=--all-features so that the build
# it already made is reused). cargo-deb is installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --version 3.8.0 --locked --quiet
# The package holds both binaries; cargo-deb builds only its own crate's.
# shellcheck disable=SC2086 # FEATURES is a list of cargo flags
cargo build --locked --profile "$profile" ${FEATURES:-} -p appstore-helper -p appstore-web --bins
strip=()
[[ $profile == release ]] || strip=(--no-strip)
cargo deb --locked -p appstore-web --no-build --profile "$profile" "${strip[@]}" --output target/debian/ "$@"
