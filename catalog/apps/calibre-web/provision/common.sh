#!/usr/bin/env bash
# Shared helpers for the calibre-web scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Calibre-Web comes from PyPI (a pinned version in a venv), the
# rest from Debian's archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The Calibre-Web release this catalog version installs (PyPI package `calibreweb`).
CW_VERSION=0.6.27
APP_DIR=/opt/calibre-web
VENV=$APP_DIR/venv
SERVICE=calibre-web
SVC_USER=calibre-web
CONFIG_DIR=/var/lib/calibre-web
APP_DB=$CONFIG_DIR/app.db
LIBRARY_DIR=/srv/calibre-library
UNIT_FILE=/etc/systemd/system/$SERVICE.service
TOOL="$(dirname "${BASH_SOURCE[0]}")/cw_tool.py"
# libmagic1 for python-magic (file type detection on upload).
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(python3 python3-venv libmagic1 curl ca-certificates)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8083" or "8083.0".
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
    if [[ -n ${CW_USER:-} && ! $CW_USER =~ ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$ ]]; then
        die "CW_USER must match ^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\$"
    fi
    if [[ -n ${CW_PASSWORD:-} ]]; then
        ((${#CW_PASSWORD} >= 8)) || die "CW_PASSWORD must be at least 8 characters"
        [[ $CW_PASSWORD != *[$'\n\r']* ]] || die "CW_PASSWORD must be a single line"
    fi
    if [[ -n ${CW_PORT:-} ]]; then
        CW_PORT=$(normalize_port "$CW_PORT")
    fi
    case ${CW_UPLOADS:-true} in
        true | false) ;;
        *) die "CW_UPLOADS must be true or false" ;;
    esac
    return 0
}

ensure_user() {
    if ! getent passwd "$SVC_USER" >/dev/null; then
        useradd --system --user-group --home-dir "$CONFIG_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Calibre-Web" "$SVC_USER"
        log "Created the system user $SVC_USER"
    fi
}

# The volumes may come from an earlier container whose calibre-web user had another uid.
prepare_storage() {
    install -d -m 0750 "$CONFIG_DIR"
    install -d -m 0755 "$LIBRARY_DIR"
    chown -R "$SVC_USER:$SVC_USER" "$CONFIG_DIR" "$LIBRARY_DIR"
}

# Creates the venv (again, when its Python is gone after a Debian upgrade) and installs the
# pinned Calibre-Web into it.
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
    log "Installing calibreweb==${CW_VERSION} from PyPI"
    "$VENV/bin/pip" install --no-input --disable-pip-version-check --progress-bar off -q \
        "calibreweb==${CW_VERSION}"
    log "Installed $("$VENV/bin/cps" -v 2>&1 | head -n 1)"
}

# A new library volume gets an empty Calibre library. Its schema is Calibre's own
# (metadata_sqlite.sql), taken from Debian's calibre package, which is only downloaded and
# unpacked for that file, never installed.
ensure_library() {
    local tmp
    if [[ -f $LIBRARY_DIR/metadata.db ]]; then
        log "Using the Calibre library in $LIBRARY_DIR"
        return 0
    fi
    log "Creating an empty Calibre library in $LIBRARY_DIR (schema from Debian's calibre package)"
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || chmod 0777 "$tmp"
    (cd "$tmp" && apt-get download -q calibre >/dev/null) || {
        rm -rf "$tmp"
        die "could not download Debian's calibre package"
    }
    dpkg-deb --fsys-tarfile "$tmp"/calibre_*.deb |
        tar -xO ./usr/share/calibre/metadata_sqlite.sql >"$tmp/metadata_sqlite.sql" || {
        rm -rf "$tmp"
        die "Debian's calibre package has no metadata_sqlite.sql"
    }
    "$VENV/bin/python" "$TOOL" new-library "$LIBRARY_DIR" "$tmp/metadata_sqlite.sql" || {
        rm -rf "$tmp"
        die "could not create the library"
    }
    rm -rf "$tmp"
    chown -R "$SVC_USER:$SVC_USER" "$LIBRARY_DIR"
}

write_unit() {
    cat >"$UNIT_FILE.tmp" <<UNIT
# Managed by PVE App Store (app calibre-web): rewritten on install and upgrade.
[Unit]
Description=Calibre-Web e-book library
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SVC_USER}
Group=${SVC_USER}
Environment=CALIBRE_DBPATH=${CONFIG_DIR}
Environment=HOME=${CONFIG_DIR}
Environment=PYTHONUNBUFFERED=1
CacheDirectory=calibre-web
ExecStart=${VENV}/bin/cps -p ${APP_DB} -o /dev/stdout
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
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

# HTTP status of the login page on the given port ("000" when nothing answers).
login_page_code() {
    curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/login" 2>/dev/null || true
}

wait_for_port() {
    local port=$1 code i
    for i in $(seq 1 90); do
        code=$(login_page_code "$port")
        if [[ $code == 200 ]]; then
            log "Calibre-Web answers on port ${port} (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    die "Calibre-Web did not answer on port ${port} within 90 seconds (last HTTP ${code:-none})"
}

# Calibre-Web creates its settings database (app.db) at its first start; start it once with the
# configured port when the config volume has none yet.
ensure_settings_db() {
    local i
    if [[ -f $APP_DB ]]; then
        log "Using the settings database $APP_DB (accounts and settings are kept)"
        return 0
    fi
    log "First start of Calibre-Web to create $APP_DB"
    systemctl set-environment "CALIBRE_PORT=${CW_PORT}"
    systemctl start "$SERVICE"
    wait_for_port "$CW_PORT"
    systemctl stop "$SERVICE"
    systemctl unset-environment CALIBRE_PORT
    for i in $(seq 1 10); do
        [[ -f $APP_DB ]] && return 0
        sleep 1
    done
    die "Calibre-Web did not create $APP_DB"
}

# Applies library, port, uploads and the admin login to app.db; the password goes on stdin.
apply_settings() {
    systemctl stop "$SERVICE" 2>/dev/null || true
    printf '%s\n' "$CW_PASSWORD" |
        "$VENV/bin/python" "$TOOL" apply "$APP_DB" "$LIBRARY_DIR" "$CW_PORT" "$CW_USER" "$CW_UPLOADS" ||
        die "could not apply the settings to $APP_DB"
    chown "$SVC_USER:$SVC_USER" "$APP_DB"
}

start_service() {
    systemctl restart "$SERVICE"
    wait_for_port "$CW_PORT"
}

# Logs in through the OPDS feed (HTTP basic auth): proves the password and the library work. The
# credentials go to curl in a private config file, never on its command line.
check_login() {
    local auth code
    auth=$(mktemp)
    chmod 0600 "$auth"
    printf 'header = "Authorization: Basic %s"\n' \
        "$(printf '%s:%s' "$CW_USER" "$CW_PASSWORD" | base64 -w0)" >"$auth"
    code=$(curl -sS --max-time 10 -K "$auth" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${CW_PORT}/opds" || true)
    rm -f "$auth"
    [[ $code == 200 ]] || die "login as '${CW_USER}' failed (OPDS answered HTTP ${code:-none})"
    log "Login as '${CW_USER}' works"
}
