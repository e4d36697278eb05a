#!/usr/bin/env bash
# Shared helpers for the qbittorrent scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

QBT_ACCOUNT=qbittorrent
QBT_HOME=/var/lib/qbittorrent
QBT_CONF=$QBT_HOME/.config/qBittorrent/qBittorrent.conf
DOWNLOADS=$QBT_HOME/downloads
# Debian's template unit, run as the qbittorrent user.
QBT_UNIT=qbittorrent-nox@${QBT_ACCOUNT}.service
QBT_DROPIN_DIR=/etc/systemd/system/${QBT_UNIT}.d
# python3-minimal computes the PBKDF2 hash and edits the configuration file.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(qbittorrent-nox python3-minimal curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8080" or "8080.0".
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
    if [[ -n ${QBT_USER:-} && ! $QBT_USER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$ ]]; then
        die "QBT_USER must match ^[A-Za-z0-9][A-Za-z0-9._-]{2,31}\$"
    fi
    if [[ -n ${QBT_PASSWORD:-} ]]; then
        ((${#QBT_PASSWORD} >= 8)) || die "QBT_PASSWORD must be at least 8 characters"
        [[ $QBT_PASSWORD != *[[:cntrl:]]* ]] || die "QBT_PASSWORD must be a single line without control characters"
    fi
    [[ -z ${QBT_PORT:-} ]] || QBT_PORT=$(normalize_port "$QBT_PORT")
    [[ -z ${QBT_PEER_PORT:-} ]] || QBT_PEER_PORT=$(normalize_port "$QBT_PEER_PORT")
    if [[ -n ${QBT_PORT:-} && ${QBT_PORT:-} == "${QBT_PEER_PORT:-}" ]]; then
        die "the web UI port and the peer port must differ"
    fi
    return 0
}

ensure_user() {
    if ! getent passwd "$QBT_ACCOUNT" >/dev/null; then
        log "Creating the system user '$QBT_ACCOUNT'"
        useradd --system --user-group --no-create-home --home-dir "$QBT_HOME" \
            --shell /usr/sbin/nologin --comment "qBittorrent" "$QBT_ACCOUNT"
    fi
}

# The volume may hold files of an earlier container whose qbittorrent user had another uid.
prepare_storage() {
    install -d -m 0750 -o "$QBT_ACCOUNT" -g "$QBT_ACCOUNT" "$QBT_HOME" "$QBT_HOME/.config" \
        "$(dirname "$QBT_CONF")" "$QBT_HOME/.local" "$QBT_HOME/.local/share"
    install -d -m 0775 "$DOWNLOADS"
    chown "$QBT_ACCOUNT:$QBT_ACCOUNT" "$DOWNLOADS"
    chmod 0775 "$DOWNLOADS"
    find "$DOWNLOADS" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R "$QBT_ACCOUNT:$QBT_ACCOUNT" {} +
}

# Debian's unit with the legal notice accepted on the command line too (no prompt on a first start).
write_unit_override() {
    install -d -m 0755 "$QBT_DROPIN_DIR"
    cat >"$QBT_DROPIN_DIR/appstore.conf" <<UNIT
# Managed by PVE App Store (app qbittorrent).
[Service]
ExecStart=
ExecStart=/usr/bin/qbittorrent-nox --confirm-legal-notice
UNIT
    systemctl daemon-reload
}

stop_qbittorrent() {
    # qBittorrent writes its configuration back when it stops: change it only while it is stopped.
    if systemctl is-active --quiet "$QBT_UNIT"; then
        log "Stopping qBittorrent to change its configuration"
        systemctl stop "$QBT_UNIT"
    fi
}

# Sets our keys in qBittorrent.conf and keeps every other line. With QBT_SET_LOGIN=yes it also
# sets the web UI username and the password as qBittorrent's PBKDF2 hash (SHA-512, 100000
# rounds, 16-byte salt; kept when it already matches). The password is read from the
# environment, never from a command line.
write_config() {
    local set_login=${1:-yes}
    QBT_SET_LOGIN=$set_login QBT_CONF=$QBT_CONF QBT_DOWNLOADS=$DOWNLOADS QBT_USER=${QBT_USER:-} \
        QBT_PASSWORD=${QBT_PASSWORD:-} QBT_PORT=$QBT_PORT QBT_PEER_PORT=$QBT_PEER_PORT python3 - <<'PY'
import base64, hashlib, os, re

path = os.environ["QBT_CONF"]
try:
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
except FileNotFoundError:
    lines = []

def find(section, key):
    """Index of the section header and of the key's line (or None)."""
    head, cur = None, None
    for i, line in enumerate(lines):
        m = re.match(r"^\[(.*)\]\s*$", line)
        if m:
            cur = m.group(1)
            if cur == section:
                head = i
            continue
        if cur == section and line.split("=", 1)[0].strip() == key:
            return head, i
    return head, None

def get(section, key):
    _, i = find(section, key)
    return None if i is None else lines[i].split("=", 1)[1].strip()

def put(section, key, value):
    head, i = find(section, key)
    entry = f"{key}={value}"
    if i is not None:
        lines[i] = entry
        return
    if head is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.extend([f"[{section}]", entry])
        return
    # Append at the end of the section, before the blank line that ends it.
    end = head + 1
    while end < len(lines) and not lines[end].startswith("["):
        end += 1
    while end > head + 1 and not lines[end - 1].strip():
        end -= 1
    lines.insert(end, entry)

def pbkdf2(password, salt):
    return hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, 100000, 64)

put("LegalNotice", "Accepted", "true")
put("Preferences", r"WebUI\Enabled", "true")
put("Preferences", r"WebUI\Address", "*")
put("Preferences", r"WebUI\Port", os.environ["QBT_PORT"])
put("BitTorrent", r"Session\Port", os.environ["QBT_PEER_PORT"])
put("BitTorrent", r"Session\DefaultSavePath", os.environ["QBT_DOWNLOADS"])

if os.environ["QBT_SET_LOGIN"] == "yes":
    password = os.environ["QBT_PASSWORD"]
    put("Preferences", r"WebUI\Username", os.environ["QBT_USER"])
    current = get("Preferences", r"WebUI\Password_PBKDF2") or ""
    m = re.fullmatch(r'"?@ByteArray\(([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)\)"?', current)
    # (python3-minimal has no hmac module; a plain comparison of our own hash is fine here.)
    if not (m and pbkdf2(password, base64.b64decode(m.group(1))) == base64.b64decode(m.group(2))):
        salt = os.urandom(16)
        value = "%s:%s" % (base64.b64encode(salt).decode(), base64.b64encode(pbkdf2(password, salt)).decode())
        put("Preferences", r"WebUI\Password_PBKDF2", f'"@ByteArray({value})"')

fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.fchmod(fd, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
PY
    chown "$QBT_ACCOUNT:$QBT_ACCOUNT" "$QBT_CONF"
    log "Wrote $QBT_CONF (web UI on port ${QBT_PORT}, peers on ${QBT_PEER_PORT}, downloads in $DOWNLOADS)"
}

start_qbittorrent() {
    log "Enabling and starting $QBT_UNIT"
    systemctl enable --quiet "$QBT_UNIT"
    systemctl restart "$QBT_UNIT"
}

wait_for_qbittorrent() {
    local code i
    log "Waiting for the web UI on port ${QBT_PORT}"
    for i in $(seq 1 60); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${QBT_PORT}/" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            log "qBittorrent answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$QBT_UNIT" --no-pager -n 40 >&2 || true
    die "qBittorrent did not answer on port ${QBT_PORT} within 60 seconds"
}

# Logs in through the Web API (answer "Ok."). The form body is built from the environment and
# reaches curl on stdin, never on a command line.
check_login() {
    local body
    body=$(QBT_USER=$QBT_USER QBT_PASSWORD=$QBT_PASSWORD python3 -c \
        'import os, urllib.parse; print(urllib.parse.urlencode({"username": os.environ["QBT_USER"], "password": os.environ["QBT_PASSWORD"]}), end="")' |
        curl -sS --max-time 10 -H 'Content-Type: application/x-www-form-urlencoded' \
            --data-binary @- "http://127.0.0.1:${QBT_PORT}/api/v2/auth/login" || true)
    [[ $body == "Ok." ]] || die "web UI login as '${QBT_USER}' failed (answer: ${body:-none})"
    log "Web UI login as '${QBT_USER}' works"
}
