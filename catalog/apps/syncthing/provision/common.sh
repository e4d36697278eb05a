#!/usr/bin/env bash
# Shared helpers for the syncthing scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

ST_USER=syncthing
ST_HOME=/var/lib/syncthing
# Configuration, keys and index; on the data volume together with the synced folders.
ST_CONF_DIR=$ST_HOME/.config/syncthing
ST_CONFIG=$ST_CONF_DIR/config.xml
# Debian's template unit, run as the syncthing user.
ST_UNIT=syncthing@${ST_USER}.service
ST_DROPIN_DIR=/etc/systemd/system/${ST_UNIT}.d
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(syncthing curl ca-certificates)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8384" or "8384.0".
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
    if [[ -n ${SYNCTHING_GUI_USER:-} && ! $SYNCTHING_GUI_USER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ ]]; then
        die "SYNCTHING_GUI_USER must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${SYNCTHING_GUI_PASSWORD:-} ]]; then
        ((${#SYNCTHING_GUI_PASSWORD} >= 8)) || die "SYNCTHING_GUI_PASSWORD must be at least 8 characters"
        [[ $SYNCTHING_GUI_PASSWORD != *[[:cntrl:]]* ]] ||
            die "SYNCTHING_GUI_PASSWORD must be a single line without control characters"
    fi
    if [[ -n ${SYNCTHING_GUI_PORT:-} ]]; then
        SYNCTHING_GUI_PORT=$(normalize_port "$SYNCTHING_GUI_PORT")
    fi
    case ${SYNCTHING_PUBLIC:-true} in
        true | false) ;;
        *) die "SYNCTHING_PUBLIC must be true or false" ;;
    esac
    return 0
}

# The system user Syncthing runs as; its home is the data volume.
ensure_user() {
    if ! getent passwd "$ST_USER" >/dev/null; then
        log "Creating the system user '$ST_USER'"
        useradd --system --user-group --no-create-home --home-dir "$ST_HOME" \
            --shell /usr/sbin/nologin --comment "Syncthing" "$ST_USER"
    fi
}

# The volume may hold data of an earlier container whose syncthing user had another uid.
prepare_storage() {
    install -d -m 0750 "$ST_HOME"
    chown "$ST_USER:$ST_USER" "$ST_HOME"
    find "$ST_HOME" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R "$ST_USER:$ST_USER" {} +
    install -d -m 0700 -o "$ST_USER" -g "$ST_USER" "$ST_HOME/.config" "$ST_CONF_DIR"
}

# Starts Debian's unit with our home directory; Syncthing's own upgrader stays off (Debian
# ships the updates).
write_unit_override() {
    install -d -m 0755 "$ST_DROPIN_DIR"
    cat >"$ST_DROPIN_DIR/appstore.conf" <<UNIT
# Managed by PVE App Store (app syncthing).
[Service]
Environment=STNOUPGRADE=1
ExecStart=
ExecStart=/usr/bin/syncthing serve --no-browser --no-restart --logflags=0 --home=${ST_CONF_DIR}
UNIT
    systemctl daemon-reload
}

stop_syncthing() {
    if systemctl is-active --quiet "$ST_UNIT"; then
        log "Stopping Syncthing to change its configuration"
        systemctl stop "$ST_UNIT"
    fi
}

# Creates the keys and config.xml on first use, else keeps them (and so the device ID), and sets
# the GUI user and password. The password reaches Syncthing on stdin only; it stores a bcrypt hash.
set_credentials() {
    local first="" out
    [[ -f $ST_CONFIG ]] || first=yes
    if ! out=$(printf '%s\n' "$SYNCTHING_GUI_PASSWORD" |
        runuser -u "$ST_USER" -- env HOME="$ST_HOME" \
            syncthing generate --home="$ST_CONF_DIR" --skip-port-probing \
            --gui-user="$SYNCTHING_GUI_USER" --gui-password=- 2>&1); then
        printf '%s\n' "$out" | tail -n 10 >&2
        die "syncthing generate could not write $ST_CONFIG"
    fi
    if [[ -n $first ]]; then
        log "Created Syncthing's keys and configuration in $ST_CONF_DIR"
    else
        log "Kept Syncthing's existing keys and configuration in $ST_CONF_DIR"
    fi
    log "Set the GUI login of '${SYNCTHING_GUI_USER}'"
}

# Replaces the text of <elem> inside the <block> element of config.xml.
set_xml() {
    local block=$1 elem=$2 value=$3
    sed -i -E "/<${block}[ >]/,/<\\/${block}>/ s#<${elem}>[^<]*</${elem}>#<${elem}>${value}</${elem}>#" "$ST_CONFIG"
    grep -q "<${elem}>${value}</${elem}>" "$ST_CONFIG" || die "could not set ${block}/${elem} in $ST_CONFIG"
}

# GUI address and the use of public servers; Syncthing must be stopped (it rewrites the file).
apply_settings() {
    set_xml gui address "0.0.0.0:${SYNCTHING_GUI_PORT}"
    set_xml options startBrowser false
    set_xml options globalAnnounceEnabled "$SYNCTHING_PUBLIC"
    set_xml options relaysEnabled "$SYNCTHING_PUBLIC"
    chown "$ST_USER:$ST_USER" "$ST_CONFIG"
    chmod 0600 "$ST_CONFIG"
    log "GUI on 0.0.0.0:${SYNCTHING_GUI_PORT}; public discovery and relays: ${SYNCTHING_PUBLIC}"
}

start_syncthing() {
    log "Enabling and starting $ST_UNIT"
    systemctl enable --quiet "$ST_UNIT"
    systemctl restart "$ST_UNIT"
}

wait_for_syncthing() {
    local body i
    log "Waiting for the Syncthing GUI on port ${SYNCTHING_GUI_PORT}"
    for i in $(seq 1 60); do
        body=$(curl -fsS --max-time 3 "http://127.0.0.1:${SYNCTHING_GUI_PORT}/rest/noauth/health" 2>/dev/null || true)
        if [[ $body == *'"OK"'* ]]; then
            log "Syncthing answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$ST_UNIT" --no-pager -n 40 >&2 || true
    die "Syncthing did not answer on port ${SYNCTHING_GUI_PORT} within 60 seconds"
}

json_escape() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '%s' "$s"
}

# Logs in through the GUI's login form endpoint (204 = accepted). The credentials reach curl on
# stdin, never on its command line.
check_login() {
    local code
    code=$(printf '{"username":"%s","password":"%s","stayLoggedIn":false}' \
        "$(json_escape "$SYNCTHING_GUI_USER")" "$(json_escape "$SYNCTHING_GUI_PASSWORD")" |
        curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary @- "http://127.0.0.1:${SYNCTHING_GUI_PORT}/rest/noauth/auth/password" || true)
    [[ $code == 204 ]] || die "GUI login as '${SYNCTHING_GUI_USER}' failed (HTTP ${code:-none})"
    log "GUI login as '${SYNCTHING_GUI_USER}' works"
}

show_device_id() {
    local id
    id=$(runuser -u "$ST_USER" -- env HOME="$ST_HOME" syncthing serve --device-id --home="$ST_CONF_DIR" 2>/dev/null || true)
    [[ -z $id ]] || log "Device ID: $id"
}
