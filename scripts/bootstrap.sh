#!/usr/bin/env bash
# Installs what PVE App Store needs to build and test on Debian or Ubuntu.
# Only missing packages are installed; a machine that has everything is left untouched.
set -euo pipefail

# lxc, debootstrap, debian-archive-keyring, iproute2, nftables: the real LXC back end of tests/pve-sim;
# zstd: the simulated node's vzdump archives (GNU tar --zstd), as on a real node; tzdata: the time
# zones schedules are read in (a PVE node has it).
packages=(build-essential pkg-config libssl-dev libudev-dev git ca-certificates sudo
          lxc debootstrap debian-archive-keyring iproute2 nftables zstd tzdata)

# The test command adds what only the tests need (BOOTSTRAP_TEST=1): Chromium for the browser tests,
# and Node.js with npm when there is no node at all.
if [[ ${BOOTSTRAP_TEST:-0} == 1 ]]; then
    # shellcheck: dist/install.sh and the catalog's scripts are checked by the tests.
    packages+=(chromium shellcheck)
    command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done

if ((${#missing[@]})); then
    sudo=()
    [[ "$(id -u)" == 0 ]] || sudo=(sudo)
    echo "Installing: ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    elif apt-cache show rustup >/dev/null 2>&1; then
        # Debian 13 and Ubuntu 24.04 package rustup; it installs the stable toolchain.
        sudo=()
        [[ "$(id -u)" == 0 ]] || sudo=(sudo)
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq rustup >&2
        rustup default stable >&2
    else
        echo "error: no Rust toolchain (cargo) found. Install Rust 1.89 or newer with rustup" \
             "(https://rustup.rs), then run this command again." >&2
        exit 1
    fi
fi
