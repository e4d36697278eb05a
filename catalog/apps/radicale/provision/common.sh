#!/usr/bin/env bash
# Shared helpers for the radicale scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

RADICALE_CONFIG=/etc/radicale/config
RADICALE_USERS=/etc/radicale/users
COLLECTIONS=/var/lib/radicale/collections
# Radicale checks bcrypt hashes with the bcrypt module (3.5 in Debian 13 directly, 3.1 in Debian 12
# through passlib); the Debian package only suggests it. Both stay listed so an upgrade of a container
# installed on Debian 12 keeps working. htpasswd comes from apache2-utils.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(radicale python3-passlib python3-bcrypt apache2-utils curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "5232" or "5232.0".
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
    if [[ -n ${RADICALE_USER:-} && ! $RADICALE_USER =~ ^[a-z][a-z0-9._-]{0,31}$ ]]; then
        die "RADICALE_USER must match ^[a-z][a-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${RADICALE_PASSWORD:-} ]]; then
        ((${#RADICALE_PASSWORD} >= 8)) || die "RADICALE_PASSWORD must be at least 8 characters"
        [[ $RADICALE_PASSWORD != *$'\n'* ]] || die "RADICALE_PASSWORD must be a single line"
    fi
    if [[ -n ${RADICALE_PORT:-} ]]; then
        RADICALE_PORT=$(normalize_port "$RADICALE_PORT")
    fi
    return 0
}

write_config() {
    local tmp
    # Keep the file Debian shipped, once.
    if [[ -f $RADICALE_CONFIG && ! -f $RADICALE_CONFIG.debian ]] &&
        ! grep -q 'Managed by PVE App Store' "$RADICALE_CONFIG"; then
        cp -p "$RADICALE_CONFIG" "$RADICALE_CONFIG.debian"
    fi
    tmp=$(mktemp /etc/radicale/.config.XXXXXX)
    cat >"$tmp" <<CONFIG
# Managed by PVE App Store (app radicale): rewritten on install and upgrade.
# The file Debian shipped is kept as config.debian.

[server]
hosts = 0.0.0.0:${RADICALE_PORT}

[auth]
type = htpasswd
htpasswd_filename = ${RADICALE_USERS}
htpasswd_encryption = bcrypt
# Seconds to wait after a failed login.
delay = 2

[rights]
# Each user reads and writes only their own calendars and address books.
type = owner_only

[storage]
filesystem_folder = ${COLLECTIONS}

[web]
type = internal

[logging]
level = info
CONFIG
    chmod 0644 "$tmp"
    mv -f "$tmp" "$RADICALE_CONFIG"
    log "Wrote $RADICALE_CONFIG (listening on 0.0.0.0:${RADICALE_PORT})"
}

# (Re)creates the htpasswd file with one bcrypt entry; the password goes through stdin only.
write_users() {
    local tmp
    tmp=$(mktemp /etc/radicale/.users.XXXXXX)
    printf '%s\n' "$RADICALE_PASSWORD" | htpasswd -i -B -C 10 -c "$tmp" "$RADICALE_USER" 2>/dev/null ||
        die "htpasswd could not write the password file"
    chown root:radicale "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$RADICALE_USERS"
    log "Wrote the bcrypt password of '${RADICALE_USER}' to $RADICALE_USERS"
}

prepare_storage() {
    # The volume may come from an earlier container whose radicale user had another uid.
    install -d -m 0750 "$COLLECTIONS"
    chown -R radicale:radicale "$COLLECTIONS"
}

# Any HTTP answer counts as up (/ redirects to the web UI).
wait_for_radicale() {
    local code i
    log "Waiting for Radicale on port ${RADICALE_PORT}"
    for i in $(seq 1 30); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:${RADICALE_PORT}/" 2>/dev/null || true)
        case $code in
            200 | 302 | 401)
                log "Radicale answers (HTTP $code after ${i}s)"
                return 0
                ;;
        esac
        sleep 1
    done
    journalctl -u radicale --no-pager -n 40 >&2 || true
    die "Radicale did not answer on port ${RADICALE_PORT} within 30 seconds"
}

# Logs in with a PROPFIND on the user's principal; proves that the bcrypt check works. The
# credentials go to curl in a private config file, never on its command line.
check_login() {
    local auth code
    auth=$(mktemp)
    chmod 0600 "$auth"
    printf 'header = "Authorization: Basic %s"\n' \
        "$(printf '%s:%s' "$RADICALE_USER" "$RADICALE_PASSWORD" | base64 -w0)" >"$auth"
    code=$(curl -sS --max-time 10 -K "$auth" -o /dev/null -w '%{http_code}' -X PROPFIND \
        -H 'Depth: 0' "http://127.0.0.1:${RADICALE_PORT}/${RADICALE_USER}/" || true)
    rm -f "$auth"
    [[ $code == 207 ]] || die "login as '${RADICALE_USER}' failed (HTTP ${code:-none})"
    log "Login as '${RADICALE_USER}' works"
}
