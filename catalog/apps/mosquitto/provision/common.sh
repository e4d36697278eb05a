#!/usr/bin/env bash
# Shared helpers for the mosquitto scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

MOSQ_CONF=/etc/mosquitto/conf.d/appstore.conf
MOSQ_PASSWD=/etc/mosquitto/passwd
DATA_DIR=/var/lib/mosquitto
# mosquitto-clients gives mosquitto_pub/mosquitto_sub for the checks (and for you).
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(mosquitto mosquitto-clients)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "1883" or "1883.0".
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
    if [[ -n ${MQTT_USER:-} && ! $MQTT_USER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
        die "MQTT_USER must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\$"
    fi
    if [[ -n ${MQTT_PASSWORD:-} ]]; then
        ((${#MQTT_PASSWORD} >= 8 && ${#MQTT_PASSWORD} <= 128)) ||
            die "MQTT_PASSWORD must be 8 to 128 characters"
        [[ ! $MQTT_PASSWORD =~ [[:space:]] ]] || die "MQTT_PASSWORD must not contain spaces"
    fi
    [[ -z ${MQTT_PORT:-} ]] || MQTT_PORT=$(normalize_port "$MQTT_PORT")
    case ${MQTT_WEBSOCKETS:-false} in
        true | false) ;;
        *) die "MQTT_WEBSOCKETS must be true or false" ;;
    esac
    if [[ ${MQTT_WEBSOCKETS:-false} == true ]]; then
        MQTT_WS_PORT=$(normalize_port "${MQTT_WS_PORT:-9001}")
        [[ $MQTT_WS_PORT != "${MQTT_PORT:-}" ]] || die "the WebSockets port must differ from the MQTT port"
    fi
    return 0
}

# The volume may be new (root-owned, with lost+found) or come from an earlier container whose
# mosquitto user had another uid.
prepare_data() {
    install -d -m 0750 "$DATA_DIR"
    chown -R mosquitto:mosquitto "$DATA_DIR"
}

# Debian's mosquitto.conf keeps persistence in /var/lib/mosquitto and includes conf.d/; the
# listeners and the login rules go into a file of our own, so the packaged file stays untouched.
write_config() {
    local tmp
    tmp=$(mktemp /etc/mosquitto/conf.d/.appstore.XXXXXX)
    {
        printf '# Managed by PVE App Store (app mosquitto): rewritten on install, upgrade and reconfigure.\n'
        printf '# Put your own settings in another file in this directory.\n\n'
        printf '# Every client must log in; the accounts are in %s.\n' "$MOSQ_PASSWD"
        printf 'per_listener_settings false\n'
        printf 'allow_anonymous false\n'
        printf 'password_file %s\n\n' "$MOSQ_PASSWD"
        printf '# Plain MQTT on all addresses.\n'
        printf 'listener %s\n' "$MQTT_PORT"
        printf 'protocol mqtt\n'
        if [[ ${MQTT_WEBSOCKETS:-false} == true ]]; then
            printf '\n# MQTT over WebSockets for browser clients.\n'
            printf 'listener %s\n' "$MQTT_WS_PORT"
            printf 'protocol websockets\n'
        fi
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$MOSQ_CONF"
    if [[ ${MQTT_WEBSOCKETS:-false} == true ]]; then
        log "Wrote $MOSQ_CONF (MQTT on port ${MQTT_PORT}, WebSockets on port ${MQTT_WS_PORT})"
    else
        log "Wrote $MOSQ_CONF (MQTT on port ${MQTT_PORT})"
    fi
}

# (Re)creates the password file with one account. The plain password only ever sits in a private
# temporary file that mosquitto_passwd -U hashes in place (PBKDF2-SHA512); it is never on a
# command line.
write_passwd() {
    local dir
    dir=$(mktemp -d /etc/mosquitto/.passwd.XXXXXX)
    chmod 0700 "$dir"
    (
        umask 077
        printf '%s:%s\n' "$MQTT_USER" "$MQTT_PASSWORD" >"$dir/passwd"
    )
    if ! mosquitto_passwd -U "$dir/passwd" >/dev/null; then
        rm -rf "$dir"
        die "mosquitto_passwd could not hash the password"
    fi
    # Mosquitto reads the file after dropping to its own user and wants it private to that user.
    chown mosquitto:mosquitto "$dir/passwd"
    chmod 0600 "$dir/passwd"
    mv -f "$dir/passwd" "$MOSQ_PASSWD"
    rm -rf "$dir"
    log "Wrote the hashed password of '${MQTT_USER}' to $MOSQ_PASSWD"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for_mosquitto() {
    local i
    log "Waiting for Mosquitto on port ${MQTT_PORT}"
    for i in $(seq 1 30); do
        if systemctl is-active --quiet mosquitto && port_open "$MQTT_PORT"; then
            if [[ ${MQTT_WEBSOCKETS:-false} != true ]] || port_open "$MQTT_WS_PORT"; then
                log "Mosquitto is listening (after ${i}s)"
                return 0
            fi
        fi
        sleep 1
    done
    journalctl -u mosquitto --no-pager -n 30 >&2 || true
    tail -n 20 /var/log/mosquitto/mosquitto.log >&2 2>/dev/null || true
    die "Mosquitto did not listen on port ${MQTT_PORT} within 30 seconds"
}

# A real round trip: subscribe, publish, receive the same message. The credentials go to the
# clients through their options files in a private directory ($XDG_CONFIG_HOME/mosquitto_sub and
# mosquitto_pub), never on their command lines. stdbuf makes mosquitto_sub write each line at once,
# so the SUBACK shows before the publish. Returns non-zero on failure.
mqtt_roundtrip() {
    local dir rc=0
    dir=$(mktemp -d)
    chmod 0700 "$dir"
    mqtt_roundtrip_in "$dir" || rc=$?
    rm -rf "$dir"
    return "$rc"
}

mqtt_roundtrip_in() {
    local dir=$1 tool topic token pid i rc=0
    for tool in mosquitto_sub mosquitto_pub; do
        (
            umask 077
            printf -- '-h 127.0.0.1\n-p %s\n-u %s\n-P %s\n' "$MQTT_PORT" "$MQTT_USER" "$MQTT_PASSWORD" >"$dir/$tool"
        )
    done
    topic="appstore/health/$$-${RANDOM}"
    token="roundtrip-${RANDOM}${RANDOM}"
    XDG_CONFIG_HOME=$dir stdbuf -oL mosquitto_sub -d -q 1 -C 1 -W 8 -t "$topic" >"$dir/out" 2>&1 &
    pid=$!
    for i in $(seq 1 50); do
        grep -qE 'SUBACK|Subscribed \(mid' "$dir/out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -qE 'SUBACK|Subscribed \(mid' "$dir/out" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        printf 'subscribe failed after %s tries: %s\n' "$i" "$(grep -v '^Client' "$dir/out" | head -n 3 | tr '\n' ' ')" >&2
        return 1
    fi
    XDG_CONFIG_HOME=$dir mosquitto_pub -q 1 -t "$topic" -m "$token" || rc=$?
    wait "$pid" || rc=$?
    if ((rc != 0)) || ! grep -qx "$token" "$dir/out"; then
        printf 'publish/subscribe round trip failed (exit %s)\n' "$rc" >&2
        return 1
    fi
    return 0
}
