#!/usr/bin/env bash
# Shared helpers for the apt-cacher-ng scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

ACNG_CONF=/etc/apt-cacher-ng/zz-appstore.conf
ACNG_SECURITY=/etc/apt-cacher-ng/security.conf
ACNG_CACHE=/var/cache/apt-cacher-ng
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(apt-cacher-ng)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    # The package asks whether to allow HTTPS tunnels; the default (no) is fine for a cache.
    echo "apt-cacher-ng apt-cacher-ng/tunnelenable boolean false" | debconf-set-selections
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "3142" or "3142.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${ACNG_PORT:-} ]]; then
        ACNG_PORT=$(normalize_port "$ACNG_PORT")
    fi
    if [[ -n ${ACNG_ADMIN_PASSWORD:-} ]]; then
        ((${#ACNG_ADMIN_PASSWORD} >= 8)) || die "ACNG_ADMIN_PASSWORD must be at least 8 characters"
        [[ $ACNG_ADMIN_PASSWORD != *[[:space:]]* ]] || die "ACNG_ADMIN_PASSWORD must not contain spaces"
    fi
    return 0
}

# Our settings go in a file of their own, read after Debian's acng.conf.
write_config() {
    local tmp
    tmp=$(mktemp /etc/apt-cacher-ng/.appstore.XXXXXX)
    cat >"$tmp" <<CONFIG
# Managed by PVE App Store (app apt-cacher-ng): rewritten on install, upgrade and reconfigure.
Port: ${ACNG_PORT}
BindAddress: 0.0.0.0
CacheDir: ${ACNG_CACHE}
CONFIG
    chmod 0644 "$tmp"
    mv -f "$tmp" "$ACNG_CONF"
}

# The maintenance page's login; the file is readable by the service only.
write_admin() {
    local tmp
    tmp=$(mktemp /etc/apt-cacher-ng/.security.XXXXXX)
    printf 'AdminAuth: admin:%s\n' "$ACNG_ADMIN_PASSWORD" >"$tmp"
    chown root:apt-cacher-ng "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$ACNG_SECURITY"
}

# The package's postinst starts the proxy at once, and it exits when it cannot write to its cache:
# so the user exists and owns the (volume's) cache directory before the package is installed. The
# postinst's own adduser then finds the same system user and leaves it.
ensure_user() {
    if ! id apt-cacher-ng >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$ACNG_CACHE" --no-create-home \
            --shell /usr/sbin/nologin --comment "Apt-Cacher NG" apt-cacher-ng
        log "Created the system user apt-cacher-ng"
    fi
}

prepare_cache() {
    install -d -o apt-cacher-ng -g apt-cacher-ng -m 0755 "$ACNG_CACHE"
    # A kept volume from an earlier install may hold files of another uid.
    chown -R apt-cacher-ng:apt-cacher-ng "$ACNG_CACHE"
}

# Waits until the report page answers on the port (bash's /dev/tcp: no curl needed).
wait_for_acng() {
    local _
    for _ in $(seq 1 30); do
        if answers; then
            return 0
        fi
        sleep 1
    done
    journalctl -u apt-cacher-ng --no-pager -n 20 >&2 || true
    die "apt-cacher-ng did not answer on port ${ACNG_PORT}"
}

answers() {
    local reply
    exec 3<>"/dev/tcp/127.0.0.1/${ACNG_PORT}" || return 1
    printf 'GET /acng-report.html HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    reply=$(head -n 1 <&3) || true
    exec 3<&- 3>&-
    # 200, or 401 when the maintenance login guards the page.
    [[ $reply == HTTP/1.?" 200"* || $reply == HTTP/1.?" 401"* ]]
}
