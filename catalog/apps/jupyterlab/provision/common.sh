#!/usr/bin/env bash
# Shared helpers for the jupyterlab scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. JupyterLab comes from PyPI (a pinned version in a venv), the
# rest from Debian's archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The JupyterLab release this catalog version installs.
JL_VERSION=4.6.6
APP_DIR=/opt/jupyterlab
VENV=$APP_DIR/venv
SERVICE=jupyterlab
SVC_USER=jupyter
HOME_DIR=/var/lib/jupyter
NOTEBOOK_DIR=$HOME_DIR/notebooks
CONFIG_DIR=/etc/jupyter
CONFIG_FILE=$CONFIG_DIR/jupyter_server_config.json
UNIT_FILE=/etc/systemd/system/$SERVICE.service
CONFIG_TOOL="$(dirname "${BASH_SOURCE[0]}")/jl_config.py"
# git and less make the terminal useful; nothing here is needed to build anything.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(python3 python3-venv curl ca-certificates git less)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8888" or "8888.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
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
    if [[ -n ${JL_PASSWORD:-} ]]; then
        ((${#JL_PASSWORD} >= 8)) || die "JL_PASSWORD must be at least 8 characters"
        [[ $JL_PASSWORD != *[$'\n\r']* ]] || die "JL_PASSWORD must be a single line"
    fi
    if [[ -n ${JL_PORT:-} ]]; then
        JL_PORT=$(normalize_port "$JL_PORT")
    fi
    case ${JL_TERMINALS:-true} in
        true | false) ;;
        *) die "JL_TERMINALS must be true or false" ;;
    esac
    return 0
}

ensure_user() {
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$HOME_DIR" --no-create-home \
            --shell /bin/bash --comment "JupyterLab" "$SVC_USER"
        log "Created the system user $SVC_USER"
    fi
}

# The notebooks volume may come from an earlier container whose jupyter user had another uid.
prepare_storage() {
    install -d -m 0750 "$HOME_DIR"
    install -d -m 0750 "$NOTEBOOK_DIR"
    chown "$SVC_USER:$SVC_USER" "$HOME_DIR"
    chown -R "$SVC_USER:$SVC_USER" "$NOTEBOOK_DIR"
}

# Runs a command as the jupyter user. The venv belongs to that user (so `%pip install` works from
# a notebook), so root never runs code from it: pip and Python in the venv run as jupyter too.
as_jupyter() {
    (cd "$HOME_DIR" && runuser -u "$SVC_USER" -- env HOME="$HOME_DIR" "$@")
}

# Creates the venv (again, when its Python is gone after a Debian upgrade) and installs the pinned
# JupyterLab into it.
install_venv() {
    install -d -m 0755 "$APP_DIR"
    if [[ -x $VENV/bin/python ]] && ! as_jupyter "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
        log "The venv's Python is broken; creating the venv again"
        rm -rf "$VENV"
    fi
    install -d -m 0755 -o "$SVC_USER" -g "$SVC_USER" "$VENV"
    chown -R "$SVC_USER:$SVC_USER" "$VENV"
    if [[ ! -x $VENV/bin/python ]]; then
        log "Creating the venv $VENV ($(python3 --version))"
        as_jupyter python3 -m venv "$VENV"
    fi
    log "Installing jupyterlab==${JL_VERSION} from PyPI"
    as_jupyter "$VENV/bin/pip" install --no-input --disable-pip-version-check --progress-bar off -q \
        "jupyterlab==${JL_VERSION}"
    log "Installed JupyterLab $(as_jupyter "$VENV/bin/jupyter-lab" --version)"
}

# The Jupyter Server configuration with the argon2 hash of the password. jl_config.py runs as the
# jupyter user (its code is passed with -c, the password on stdin) and prints the JSON; root
# writes it.
write_config() {
    local tmp
    install -d -m 0755 "$CONFIG_DIR"
    tmp=$(mktemp "$CONFIG_DIR/.jupyter_server_config.XXXXXX")
    printf '%s\n' "$JL_PASSWORD" |
        as_jupyter "$VENV/bin/python" -c "$(cat "$CONFIG_TOOL")" "$JL_PORT" "$NOTEBOOK_DIR" "$JL_TERMINALS" \
            >"$tmp" || {
        rm -f "$tmp"
        die "could not write $CONFIG_FILE"
    }
    grep -q '"hashed_password": "argon2:' "$tmp" || {
        rm -f "$tmp"
        die "Jupyter Server did not return a password hash"
    }
    chown "root:$SVC_USER" "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$CONFIG_FILE"
    log "Wrote $CONFIG_FILE (port ${JL_PORT}, terminals ${JL_TERMINALS})"
}

write_unit() {
    cat >"$UNIT_FILE.tmp" <<UNIT
# Managed by PVE App Store (app jupyterlab): rewritten on install and upgrade.
[Unit]
Description=JupyterLab server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SVC_USER}
Group=${SVC_USER}
WorkingDirectory=${NOTEBOOK_DIR}
Environment=HOME=${HOME_DIR}
Environment=SHELL=/bin/bash
Environment=PATH=${VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
Environment=PYTHONUNBUFFERED=1
ExecStart=${VENV}/bin/jupyter-lab --no-browser
Restart=on-failure
RestartSec=5
# Let running kernels save and end before the server is killed.
KillMode=mixed
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
UNIT
    mv -f "$UNIT_FILE.tmp" "$UNIT_FILE"
    systemctl daemon-reload
    systemctl enable --quiet "$SERVICE"
}

start_service() {
    systemctl restart "$SERVICE"
    wait_for_jupyter
}

wait_for_jupyter() {
    local code i
    log "Waiting for JupyterLab on port ${JL_PORT}"
    for i in $(seq 1 120); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:${JL_PORT}/login" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            log "JupyterLab answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    die "JupyterLab did not answer on port ${JL_PORT} within 120 seconds (last HTTP ${code:-none})"
}

# Logs in through the login form and reads /api/status with the session cookie; also checks that
# the API refuses a request without it. The password goes to curl from a private file.
check_login() {
    local tmp xsrf code anon
    tmp=$(mktemp -d)
    chmod 0700 "$tmp"
    printf '%s' "$JL_PASSWORD" >"$tmp/password"
    curl -sS --max-time 10 -c "$tmp/jar" -o /dev/null "http://127.0.0.1:${JL_PORT}/login" || true
    xsrf=$(awk '$6 == "_xsrf" { print $7 }' "$tmp/jar" 2>/dev/null | tail -n 1)
    curl -sS --max-time 15 -b "$tmp/jar" -c "$tmp/jar" -o /dev/null \
        --data-urlencode "_xsrf=${xsrf}" --data-urlencode "password@$tmp/password" \
        "http://127.0.0.1:${JL_PORT}/login" || true
    code=$(curl -sS --max-time 10 -b "$tmp/jar" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${JL_PORT}/api/status" || true)
    rm -rf "$tmp"
    [[ $code == 200 ]] || die "login with the password failed (/api/status answered HTTP ${code:-none})"
    anon=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${JL_PORT}/api/status" || true)
    [[ $anon == 403 || $anon == 401 ]] || die "JupyterLab answers without a login (HTTP ${anon:-none})"
    log "Login with the password works; the API refuses requests without it"
}

# Starts a Python kernel through the API, checks that it is still alive after a few seconds and
# shuts it down again: proves that kernels run as the jupyter user.
check_kernel() {
    local tmp xsrf body id state i
    tmp=$(mktemp -d)
    chmod 0700 "$tmp"
    printf '%s' "$JL_PASSWORD" >"$tmp/password"
    curl -sS --max-time 10 -c "$tmp/jar" -o /dev/null "http://127.0.0.1:${JL_PORT}/login" || true
    xsrf=$(awk '$6 == "_xsrf" { print $7 }' "$tmp/jar" 2>/dev/null | tail -n 1)
    curl -sS --max-time 15 -b "$tmp/jar" -c "$tmp/jar" -o /dev/null \
        --data-urlencode "_xsrf=${xsrf}" --data-urlencode "password@$tmp/password" \
        "http://127.0.0.1:${JL_PORT}/login" || true
    xsrf=$(awk '$6 == "_xsrf" { print $7 }' "$tmp/jar" 2>/dev/null | tail -n 1)
    body=$(curl -sS --max-time 30 -b "$tmp/jar" -H "X-XSRFToken: ${xsrf}" \
        -H 'Content-Type: application/json' -d '{"name": "python3"}' \
        "http://127.0.0.1:${JL_PORT}/api/kernels" || true)
    id=$(printf '%s' "$body" | sed -n 's/.*"id": *"\([0-9a-f-]*\)".*/\1/p')
    if [[ -z $id ]]; then
        rm -rf "$tmp"
        die "JupyterLab could not start a Python kernel: ${body:-no answer}"
    fi
    for i in 1 2 3 4 5; do
        sleep 1
        body=$(curl -sS --max-time 10 -b "$tmp/jar" "http://127.0.0.1:${JL_PORT}/api/kernels/${id}" || true)
        state=$(printf '%s' "$body" | sed -n 's/.*"execution_state": *"\([a-z]*\)".*/\1/p')
        [[ $state == dead ]] && break
    done
    curl -sS --max-time 15 -b "$tmp/jar" -H "X-XSRFToken: ${xsrf}" -X DELETE -o /dev/null \
        "http://127.0.0.1:${JL_PORT}/api/kernels/${id}" || true
    rm -rf "$tmp"
    [[ -n $state && $state != dead ]] || {
        journalctl -u "$SERVICE" --no-pager -n 30 >&2 || true
        die "the Python kernel did not stay up (state: ${state:-unknown})"
    }
    log "A Python kernel starts (state after ${i}s: ${state}) and was shut down again"
}
