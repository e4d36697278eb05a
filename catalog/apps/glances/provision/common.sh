#!/usr/bin/env bash
# Shared helpers for the glances scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Glances comes from PyPI (a pinned version in a venv), the rest from Debian's
# archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The Glances release this catalog version installs, with its web server extra (FastAPI, Uvicorn).
GL_VERSION=4.5.8
APP_DIR=/opt/glances
VENV=$APP_DIR/venv
SERVICE=glances
SVC_USER=glances
STATE_DIR=/var/lib/glances
CONFIG_DIR=/etc/glances
CONFIG_FILE=$CONFIG_DIR/glances.conf
UNIT_FILE=/etc/systemd/system/$SERVICE.service
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(python3 python3-venv curl ca-certificates)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "61208" or "61208.0".
normalize_number() {
    local raw=${1%.0} min=$2 max=$3 what=$4
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < min || 10#$raw > max)); then
        die "invalid $what '$1' (allowed: $min to $max)"
    fi
    printf '%s' "$((10#$raw))"
}

# Checks the variables a script needs (call with the names that must be set) and the format of
# every one that is set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${GL_USER:-} && ! $GL_USER =~ ^[a-z][a-z0-9_-]{0,31}$ ]]; then
        die "GL_USER must match ^[a-z][a-z0-9_-]{0,31}\$"
    fi
    if [[ -n ${GL_PASSWORD:-} ]]; then
        ((${#GL_PASSWORD} >= 8)) || die "GL_PASSWORD must be at least 8 characters"
        [[ $GL_PASSWORD != *[$'\n\r']* ]] || die "GL_PASSWORD must be a single line"
    fi
    if [[ -n ${GL_PORT:-} ]]; then
        GL_PORT=$(normalize_number "$GL_PORT" 1 65535 port)
    fi
    if [[ -n ${GL_REFRESH:-} ]]; then
        GL_REFRESH=$(normalize_number "$GL_REFRESH" 1 60 "refresh interval")
    fi
    return 0
}

ensure_user() {
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Glances" "$SVC_USER"
        log "Created the system user $SVC_USER"
    fi
}

# Creates the venv (again, when its Python is gone after a Debian upgrade) and installs the pinned
# Glances into it.
install_venv() {
    install -d -m 0755 "$APP_DIR"
    if [[ -x $VENV/bin/python ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "The venv's Python is broken; creating the venv again"
        rm -rf "$VENV"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        log "Creating the venv $VENV ($(python3 --version))"
        python3 -m venv "$VENV"
    fi
    log "Installing glances[web]==${GL_VERSION} from PyPI"
    "$VENV/bin/pip" install --no-input --disable-pip-version-check --progress-bar off -q \
        "glances[web]==${GL_VERSION}"
    log "Installed $("$VENV/bin/glances" -V 2>/dev/null | head -n 1)"
}

# glances.conf: no update check, the password file next to it. Glances' built-in defaults apply
# to everything else.
write_config() {
    install -d -m 0750 -o root -g "$SVC_USER" "$CONFIG_DIR"
    cat >"$CONFIG_FILE.tmp" <<CONF
# Managed by PVE App Store (app glances): rewritten on install, upgrade and reconfigure.
[global]
check_update=false

[passwords]
# The web server reads <username>.pwd from here (a salted PBKDF2 hash).
local_password_path=${CONFIG_DIR}
CONF
    chmod 0644 "$CONFIG_FILE.tmp"
    mv -f "$CONFIG_FILE.tmp" "$CONFIG_FILE"
}

# Hashes the password with Glances' own code (it reads it on stdin) into <username>.pwd; password
# files of other usernames are removed.
write_password() {
    local tmp
    tmp=$(mktemp "$CONFIG_DIR/.pwd.XXXXXX")
    printf '%s\n' "$GL_PASSWORD" | "$VENV/bin/python" -c '
import sys
from glances.password import GlancesPassword
p = GlancesPassword()
sys.stdout.write(p.hash_password(p.get_hash(sys.stdin.readline().rstrip("\n"))))
' >"$tmp" || {
        rm -f "$tmp"
        die "could not hash the password"
    }
    grep -q '^[0-9a-f]\{32\}\$[0-9a-f]\+$' "$tmp" || {
        rm -f "$tmp"
        die "Glances did not return a password hash"
    }
    chown "root:$SVC_USER" "$tmp"
    chmod 0640 "$tmp"
    find "$CONFIG_DIR" -maxdepth 1 -name '*.pwd' ! -name "$GL_USER.pwd" -delete
    mv -f "$tmp" "$CONFIG_DIR/$GL_USER.pwd"
    log "Wrote the password hash for '${GL_USER}' to $CONFIG_DIR/$GL_USER.pwd"
}

write_unit() {
    cat >"$UNIT_FILE.tmp" <<UNIT
# Managed by PVE App Store (app glances): rewritten on install, upgrade and reconfigure.
[Unit]
Description=Glances system monitor (web server and REST API)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SVC_USER}
Group=${SVC_USER}
StateDirectory=glances
Environment=HOME=${STATE_DIR}
Environment=PYTHONUNBUFFERED=1
# -u with --password: the password is read from ${CONFIG_DIR}/${GL_USER}.pwd, never prompted.
ExecStart=${VENV}/bin/glances -C ${CONFIG_FILE} -w --bind 0.0.0.0 --port ${GL_PORT} -u ${GL_USER} --password -t ${GL_REFRESH} --disable-autodiscover
StandardInput=null
Restart=on-failure
RestartSec=5
NoNewPrivileges=true
ProtectSystem=full
PrivateTmp=true

[Install]
WantedBy=multi-user.target
UNIT
    mv -f "$UNIT_FILE.tmp" "$UNIT_FILE"
    systemctl daemon-reload
    systemctl enable --quiet "$SERVICE"
}

start_service() {
    systemctl restart "$SERVICE"
    wait_for_glances
}

# /api/4/status answers without a login once the server is up.
wait_for_glances() {
    local code i
    log "Waiting for Glances on port ${GL_PORT}"
    for i in $(seq 1 60); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:${GL_PORT}/api/4/status" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            log "Glances answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    die "Glances did not answer on port ${GL_PORT} within 60 seconds (last HTTP ${code:-none})"
}

# Reads /api/4/cpu with the login and checks that a request without it gets 401. The credentials
# go to curl in a private config file, never on its command line.
check_login() {
    local auth code anon
    auth=$(mktemp)
    chmod 0600 "$auth"
    printf 'header = "Authorization: Basic %s"\n' \
        "$(printf '%s:%s' "$GL_USER" "$GL_PASSWORD" | base64 -w0)" >"$auth"
    code=$(curl -sS --max-time 10 -K "$auth" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${GL_PORT}/api/4/cpu" || true)
    rm -f "$auth"
    [[ $code == 200 ]] || die "login as '${GL_USER}' failed (HTTP ${code:-none})"
    anon=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${GL_PORT}/api/4/cpu" || true)
    [[ $anon == 401 ]] || die "Glances answers without a password (HTTP ${anon:-none})"
    log "Login as '${GL_USER}' works; requests without it get 401"
}
