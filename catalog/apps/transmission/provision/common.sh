#!/usr/bin/env bash
# Shared helpers for the transmission scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

TR_SERVICE=transmission-daemon
TR_ACCOUNT=debian-transmission
TR_HOME=/var/lib/transmission-daemon
# The daemon reads settings.json from its config directory; Debian links it to
# /etc/transmission-daemon/settings.json.
TR_CONFIG_DIR=$TR_HOME/.config/transmission-daemon
DOWNLOADS=$TR_HOME/downloads
# python3-minimal edits settings.json (JSON, with the password taken from the environment).
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(transmission-daemon python3-minimal curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "9091" or "9091.0".
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
    if [[ -n ${TR_USER:-} && ! $TR_USER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ ]]; then
        die "TR_USER must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${TR_PASSWORD:-} ]]; then
        ((${#TR_PASSWORD} >= 8)) || die "TR_PASSWORD must be at least 8 characters"
        [[ $TR_PASSWORD != *[[:cntrl:]]* ]] || die "TR_PASSWORD must be a single line without control characters"
    fi
    [[ -z ${TR_PORT:-} ]] || TR_PORT=$(normalize_port "$TR_PORT")
    [[ -z ${TR_PEER_PORT:-} ]] || TR_PEER_PORT=$(normalize_port "$TR_PEER_PORT")
    if [[ -n ${TR_PORT:-} && ${TR_PORT:-} == "${TR_PEER_PORT:-}" ]]; then
        die "the web interface port and the peer port must differ"
    fi
    case ${TR_ENCRYPTION:-preferred} in
        preferred | required | tolerated) ;;
        *) die "TR_ENCRYPTION must be preferred, required or tolerated" ;;
    esac
    return 0
}

# The volume may hold files of an earlier container whose daemon user had another uid.
prepare_downloads() {
    install -d -m 0775 "$DOWNLOADS"
    chown "$TR_ACCOUNT:$TR_ACCOUNT" "$DOWNLOADS"
    chmod 0775 "$DOWNLOADS"
    find "$DOWNLOADS" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R "$TR_ACCOUNT:$TR_ACCOUNT" {} +
}

stop_daemon() {
    # The daemon writes its settings back when it stops: change them only while it is stopped.
    if systemctl is-active --quiet "$TR_SERVICE"; then
        log "Stopping $TR_SERVICE to change its settings"
        systemctl stop "$TR_SERVICE"
    fi
}

# Writes our keys into settings.json and keeps every other key. The password is read from the
# environment (never a command line) and stored in plain text; the daemon replaces it with a
# salted hash when it starts.
write_settings() {
    local file
    install -d -m 0750 -o "$TR_ACCOUNT" -g "$TR_ACCOUNT" "$TR_CONFIG_DIR"
    file=$TR_CONFIG_DIR/settings.json
    # Edit the file the link points to, so the link stays.
    [[ ! -L $file ]] || file=$(readlink -f "$file")
    TR_FILE=$file TR_DOWNLOADS=$DOWNLOADS TR_USER=$TR_USER TR_PASSWORD=$TR_PASSWORD \
        TR_PORT=$TR_PORT TR_PEER_PORT=$TR_PEER_PORT TR_ENCRYPTION=$TR_ENCRYPTION python3 - <<'PY'
import json, os
path = os.environ["TR_FILE"]
try:
    with open(path, encoding="utf-8") as f:
        settings = json.load(f)
except (FileNotFoundError, ValueError):
    settings = {}
settings.update({
    "rpc-enabled": True,
    "rpc-bind-address": "0.0.0.0",
    "rpc-port": int(os.environ["TR_PORT"]),
    "rpc-authentication-required": True,
    "rpc-username": os.environ["TR_USER"],
    "rpc-password": os.environ["TR_PASSWORD"],
    # Any address may connect (the login protects the interface); any host name may be used.
    "rpc-whitelist-enabled": False,
    "rpc-host-whitelist-enabled": False,
    "download-dir": os.environ["TR_DOWNLOADS"],
    "peer-port": int(os.environ["TR_PEER_PORT"]),
    "encryption": {"tolerated": 0, "preferred": 1, "required": 2}[os.environ["TR_ENCRYPTION"]],
})
# Written in place (private from the first byte), so a link to this file stays a link.
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.fchmod(fd, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=4, sort_keys=True)
    f.write("\n")
PY
    chown "$TR_ACCOUNT:$TR_ACCOUNT" "$file"
    chmod 0600 "$file"
    log "Wrote $file (web interface on 0.0.0.0:${TR_PORT}, peers on ${TR_PEER_PORT}, encryption ${TR_ENCRYPTION})"
}

start_daemon() {
    log "Enabling and starting $TR_SERVICE"
    systemctl enable --quiet "$TR_SERVICE"
    systemctl restart "$TR_SERVICE"
}

# Prints the curl config line with the Basic credentials (fed to curl on stdin, never argv).
auth_config() {
    printf 'header = "Authorization: Basic %s"\n' "$(printf '%s:%s' "$TR_USER" "$TR_PASSWORD" | base64 -w0)"
}

wait_for_daemon() {
    local code i
    log "Waiting for the web interface on port ${TR_PORT}"
    for i in $(seq 1 60); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:${TR_PORT}/transmission/web/" 2>/dev/null || true)
        case $code in
            200 | 301 | 302 | 401)
                log "Transmission answers (HTTP $code after ${i}s)"
                return 0
                ;;
        esac
        sleep 1
    done
    journalctl -u "$TR_SERVICE" --no-pager -n 40 >&2 || true
    die "Transmission did not answer on port ${TR_PORT} within 60 seconds"
}

# Logs in through the RPC interface: the first call returns 409 with a session id, the second
# one (with that id) must return 200 and a "success" result.
check_login() {
    local headers sid body
    headers=$(auth_config | curl -sS --max-time 10 -K - -o /dev/null -D - \
        "http://127.0.0.1:${TR_PORT}/transmission/rpc" || true)
    sid=$(printf '%s\n' "$headers" | tr -d '\r' | sed -n 's/^[Xx]-[Tt]ransmission-[Ss]ession-[Ii]d: *//p' | head -n 1)
    [[ -n $sid ]] || die "login as '${TR_USER}' failed (no RPC session; wrong credentials?)"
    body=$(auth_config | curl -fsS --max-time 10 -K - -H "X-Transmission-Session-Id: ${sid}" \
        --data-binary '{"method":"session-get","arguments":{"fields":["version","download-dir"]}}' \
        "http://127.0.0.1:${TR_PORT}/transmission/rpc" || true)
    [[ $body == *'"success"'* ]] || die "login as '${TR_USER}' failed (RPC session-get did not succeed)"
    log "Login as '${TR_USER}' works ($(printf '%s' "$body" | sed -n 's/.*"version": *"\([^"]*\)".*/Transmission \1/p'))"
}
