#!/usr/bin/env bash
# Shared helpers for the valkey scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

DATA_DIR=/var/lib/valkey
DEBIAN_CONF=/etc/valkey/valkey.conf
APP_CONF=/etc/valkey/appstore.conf
DROPIN_DIR=/etc/systemd/system/valkey-server.service.d
# Which persistence the data on the volume is in ("yes" = append-only file), for a reinstall.
MODE_MARKER=$DATA_DIR/.appstore-appendonly
SERVICE=valkey-server
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(valkey-server valkey-tools)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "6379" or "6379.0".
normalize_number() {
    local raw=${1%.0}
    [[ $raw =~ ^[0-9]{1,9}$ ]] || die "invalid number '$1'"
    printf '%s' "$((10#$raw))"
}

normalize_port() {
    local n
    n=$(normalize_number "$1")
    ((n >= 1 && n <= 65535)) || die "invalid port '$1'"
    printf '%s' "$n"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${VALKEY_PASSWORD:-} ]]; then
        ((${#VALKEY_PASSWORD} >= 8 && ${#VALKEY_PASSWORD} <= 128)) ||
            die "VALKEY_PASSWORD must be 8 to 128 characters"
        # Written between double quotes in the config file: no quotes, backslashes or spaces.
        [[ ! $VALKEY_PASSWORD =~ [[:space:]\"\\] ]] ||
            die "VALKEY_PASSWORD must not contain spaces, quotes or backslashes"
    fi
    [[ -z ${VALKEY_PORT:-} ]] || VALKEY_PORT=$(normalize_port "$VALKEY_PORT")
    [[ -z ${VALKEY_MAXMEMORY_MB:-} ]] || VALKEY_MAXMEMORY_MB=$(normalize_number "$VALKEY_MAXMEMORY_MB")
    if [[ -n ${VALKEY_MAXMEMORY_POLICY:-} ]]; then
        case $VALKEY_MAXMEMORY_POLICY in
            noeviction | allkeys-lru | allkeys-lfu | volatile-lru | volatile-lfu | allkeys-random | volatile-random | volatile-ttl) ;;
            *) die "unknown VALKEY_MAXMEMORY_POLICY '${VALKEY_MAXMEMORY_POLICY}'" ;;
        esac
    fi
    case ${VALKEY_APPENDONLY:-false} in
        true | false) ;;
        *) die "VALKEY_APPENDONLY must be true or false" ;;
    esac
    return 0
}

wanted_appendonly() {
    if [[ ${VALKEY_APPENDONLY:-false} == true ]]; then echo yes; else echo no; fi
}

# The persistence the data is in now. Switching it in the config file alone would start the server
# from the other (empty or stale) files, so the scripts start in this mode and convert live.
current_appendonly() {
    local v=
    if [[ -f $APP_CONF ]]; then
        v=$(sed -n 's/^appendonly[[:space:]]\{1,\}\(yes\|no\)[[:space:]]*$/\1/p' "$APP_CONF" | tail -n 1)
    fi
    if [[ -z $v && -f $MODE_MARKER ]]; then
        v=$(tr -dc 'yesno' <"$MODE_MARKER")
    fi
    if [[ $v != yes && $v != no ]]; then
        if compgen -G "$DATA_DIR/appendonlydir/*.manifest" >/dev/null; then v=yes; else v=no; fi
    fi
    printf '%s' "$v"
}

# The volume may be new (root-owned, with lost+found) or come from an earlier container whose
# valkey user had another uid.
prepare_data() {
    install -d -m 0750 "$DATA_DIR"
    chown -R valkey:valkey "$DATA_DIR"
}

# Our settings go into a file of our own that includes Debian's valkey.conf first and overrides
# what it must; a systemd drop-in starts the server with it. Debian's file stays untouched.
# $1: the appendonly value to write (yes/no).
write_config() {
    local aof=$1 tmp
    tmp=$(mktemp /etc/valkey/.appstore.XXXXXX)
    {
        printf '# Managed by PVE App Store (app valkey): rewritten on install, upgrade and reconfigure.\n'
        printf '# Debian'\''s file first; every line below overrides it.\n'
        printf 'include %s\n\n' "$DEBIAN_CONF"
        printf '# Every IPv4 address, and every IPv6 address where the container has IPv6.\n'
        printf 'bind * -::*\n'
        printf 'port %s\n' "$VALKEY_PORT"
        printf 'protected-mode yes\n'
        printf 'requirepass "%s"\n\n' "$VALKEY_PASSWORD"
        printf 'maxmemory %smb\n' "$VALKEY_MAXMEMORY_MB"
        printf 'maxmemory-policy %s\n\n' "$VALKEY_MAXMEMORY_POLICY"
        printf 'dir %s\n' "$DATA_DIR"
        printf 'appendonly %s\n' "$aof"
    } >"$tmp"
    chown valkey:valkey "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$APP_CONF"

    install -d -m 0755 "$DROPIN_DIR"
    tmp=$(mktemp "$DROPIN_DIR/.appstore.XXXXXX")
    cat >"$tmp" <<UNIT
# Managed by PVE App Store (app valkey): start with ${APP_CONF}, which includes ${DEBIAN_CONF}.
[Service]
ExecStart=
ExecStart=/usr/bin/valkey-server ${APP_CONF} --supervised systemd --daemonize no
UNIT
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DROPIN_DIR/appstore.conf"
    systemctl daemon-reload
}

# valkey-cli with the password in REDISCLI_AUTH (its environment), never on its command line.
vcli() {
    REDISCLI_AUTH=$VALKEY_PASSWORD timeout 10 valkey-cli --no-auth-warning -h 127.0.0.1 -p "$VALKEY_PORT" "$@"
}

ping_ok() {
    [[ $(vcli PING 2>/dev/null) == PONG ]]
}

wait_for_valkey() {
    local i
    log "Waiting for Valkey on port ${VALKEY_PORT}"
    for i in $(seq 1 60); do
        if ping_ok; then
            log "Valkey answers PING with the password (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 30 >&2 || true
    tail -n 30 /var/log/valkey/valkey-server.log >&2 2>/dev/null || true
    die "Valkey did not answer on port ${VALKEY_PORT} within 60 seconds"
}

# Writes the configuration, (re)starts Valkey in the persistence mode its data is in, then switches
# to the wanted mode on the live server (CONFIG SET appendonly), the way Valkey documents it.
apply_and_start() {
    local now want i info
    now=$(current_appendonly)
    want=$(wanted_appendonly)
    prepare_data
    write_config "$now"
    log "Enabling and (re)starting ${SERVICE}.service"
    systemctl enable --quiet "$SERVICE"
    systemctl restart "$SERVICE"
    wait_for_valkey
    if [[ $now != "$want" ]]; then
        log "Switching appendonly from ${now} to ${want} on the running server"
        [[ $(vcli CONFIG SET appendonly "$want") == OK ]] || die "CONFIG SET appendonly ${want} failed"
        if [[ $want == yes ]]; then
            for i in $(seq 1 120); do
                info=$(vcli INFO persistence | tr -d '\r')
                if grep -qx 'aof_enabled:1' <<<"$info" && grep -qx 'aof_rewrite_in_progress:0' <<<"$info" &&
                    grep -qx 'aof_rewrite_scheduled:0' <<<"$info"; then
                    break
                fi
                ((i < 120)) || die "the append-only file was not written within 120 seconds"
                sleep 1
            done
        fi
        [[ $(vcli SAVE) == OK ]] || die "SAVE failed"
        write_config "$want"
    fi
    printf '%s\n' "$want" >"$MODE_MARKER"
    chown valkey:valkey "$MODE_MARKER"
    log "Persistence: appendonly ${want}; memory limit ${VALKEY_MAXMEMORY_MB} MiB (${VALKEY_MAXMEMORY_POLICY})"
}
