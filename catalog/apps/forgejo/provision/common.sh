#!/usr/bin/env bash
# Shared helpers for the forgejo scripts. Sourced, not run. Settings come only from the
# environment that app.yml declares. Forgejo is the pinned release binary from codeberg.org,
# checked against the .sha256 published next to it.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The pinned release (15.0 is Forgejo's long-term-support line); raise it and the catalog version
# to upgrade.
FORGEJO_VERSION=15.0.9
FORGEJO_ASSET=forgejo-$FORGEJO_VERSION-linux-amd64
FORGEJO_URL=https://codeberg.org/forgejo/forgejo/releases/download/v$FORGEJO_VERSION
FORGEJO_BIN=/usr/local/bin/forgejo
FORGEJO_WORK=/var/lib/forgejo
FORGEJO_INI=$FORGEJO_WORK/custom/conf/app.ini
FORGEJO_DB=$FORGEJO_WORK/data/forgejo.db
UNIT=/etc/systemd/system/forgejo.service
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(ca-certificates curl git jq sqlite3)

FJ_APP_NAME=${FJ_APP_NAME:-Forgejo}
FJ_ALLOW_REGISTRATION=${FJ_ALLOW_REGISTRATION:-false}

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "3000" or "3000.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1024 || 10#$raw > 65535)); then
        die "invalid port '$1' (1024-65535)"
    fi
    printf '%s' "$((10#$raw))"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${FJ_ADMIN_USER:-} ]]; then
        [[ $FJ_ADMIN_USER =~ ^[a-z0-9][a-z0-9._-]{0,38}$ ]] ||
            die "FJ_ADMIN_USER must match ^[a-z0-9][a-z0-9._-]{0,38}\$"
        case $FJ_ADMIN_USER in
            admin | api | assets | user | ghost | login | explore | new | org | repo | raw | v2 | notifications | issues | pulls | milestones | search)
                die "'$FJ_ADMIN_USER' is a name Forgejo reserves; choose another admin username"
                ;;
        esac
    fi
    if [[ -n ${FJ_ADMIN_PASSWORD:-} ]]; then
        ((${#FJ_ADMIN_PASSWORD} >= 8)) || die "FJ_ADMIN_PASSWORD must be at least 8 characters"
        [[ $FJ_ADMIN_PASSWORD != *$'\n'* ]] || die "FJ_ADMIN_PASSWORD must be a single line"
    fi
    if [[ -n ${FJ_ADMIN_EMAIL:-} && ! $FJ_ADMIN_EMAIL =~ ^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$ ]]; then
        die "FJ_ADMIN_EMAIL is not an email address"
    fi
    if [[ -n ${FJ_HTTP_PORT:-} ]]; then FJ_HTTP_PORT=$(normalize_port "$FJ_HTTP_PORT"); fi
    if [[ -n ${FJ_SSH_PORT:-} ]]; then FJ_SSH_PORT=$(normalize_port "$FJ_SSH_PORT"); fi
    if [[ -n ${FJ_ROOT_URL:-} && ! $FJ_ROOT_URL =~ ^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$ ]]; then
        die "FJ_ROOT_URL must look like http(s)://host[:port]/[path]"
    fi
    [[ $FJ_APP_NAME =~ ^[A-Za-z0-9][A-Za-z0-9\ ._:-]{0,63}$ ]] ||
        die "FJ_APP_NAME may only contain letters, digits, spaces and . _ : -"
    case $FJ_ALLOW_REGISTRATION in
        true | false) ;;
        *) die "FJ_ALLOW_REGISTRATION must be true or false" ;;
    esac
    return 0
}

# Runs the forgejo CLI as the git user. fj_cfg is for the commands that read the configuration:
# it adds the service's work path and config file (Forgejo accepts them on every such command).
fj() {
    (cd / && runuser -u git -- env GITEA_WORK_DIR="$FORGEJO_WORK" FORGEJO_WORK_DIR="$FORGEJO_WORK" \
        "$FORGEJO_BIN" "$@")
}
fj_cfg() { fj "$@" --work-path "$FORGEJO_WORK" --config "$FORGEJO_INI"; }

# Queries the database as the git user, so SQLite's -wal and -shm files never end up owned by root.
db() { (cd / && runuser -u git -- sqlite3 -cmd '.timeout 5000' "$FORGEJO_DB" "$1"); }

ensure_user() {
    if ! id -u git >/dev/null 2>&1; then
        getent group git >/dev/null || groupadd --system git
        useradd --system --gid git --home-dir "$FORGEJO_WORK" --no-create-home \
            --shell /bin/bash --comment 'Forgejo' git
    fi
}

# The release binary, checked against the .sha256 published with it.
install_forgejo() {
    local dir expected marker=/usr/local/lib/forgejo-appstore-version
    if [[ -x $FORGEJO_BIN && -f $marker && $(cat "$marker") == "$FORGEJO_VERSION" ]]; then
        log "Forgejo $FORGEJO_VERSION is already installed"
        return 0
    fi
    [[ $(uname -m) == x86_64 ]] || die "this entry installs the x86_64 build of Forgejo"
    dir=$(mktemp -d)
    log "Downloading $FORGEJO_URL/$FORGEJO_ASSET"
    curl -fsSL --retry 3 -o "$dir/$FORGEJO_ASSET" "$FORGEJO_URL/$FORGEJO_ASSET" ||
        die "could not download $FORGEJO_URL/$FORGEJO_ASSET"
    curl -fsSL --retry 3 -o "$dir/$FORGEJO_ASSET.sha256" "$FORGEJO_URL/$FORGEJO_ASSET.sha256" ||
        die "could not download $FORGEJO_URL/$FORGEJO_ASSET.sha256"
    expected=$(awk '{ print $1; exit }' "$dir/$FORGEJO_ASSET.sha256")
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "$FORGEJO_ASSET.sha256 holds no SHA-256"
    printf '%s  %s\n' "$expected" "$dir/$FORGEJO_ASSET" | sha256sum -c --quiet - ||
        die "$FORGEJO_ASSET does not match its published SHA-256"
    log "Checksum verified against $FORGEJO_ASSET.sha256"
    if systemctl is-active --quiet forgejo 2>/dev/null; then systemctl stop forgejo; fi
    install -m 0755 "$dir/$FORGEJO_ASSET" "$FORGEJO_BIN"
    install -d -m 0755 "$(dirname "$marker")"
    printf '%s\n' "$FORGEJO_VERSION" >"$marker"
    rm -rf "$dir"
    log "Installed $("$FORGEJO_BIN" --version 2>/dev/null | head -n 1)"
}

# The work directory is the volume; it may come from an earlier container whose git user had
# another uid.
prepare_workdir() {
    install -d -m 0750 "$FORGEJO_WORK"
    install -d -m 0750 "$FORGEJO_WORK/custom" "$FORGEJO_WORK/custom/conf" "$FORGEJO_WORK/data" "$FORGEJO_WORK/log"
    if [[ -n $(find "$FORGEJO_WORK" -xdev \( \! -user git -o \! -group git \) -print -quit) ]]; then
        log "Giving $FORGEJO_WORK to the git user"
        chown -R git:git "$FORGEJO_WORK"
    fi
}

# Sets key = value in [section] of app.ini (section "" is the part before the first header);
# adds the key, or the section, when missing. The value travels in the environment, not argv.
ini_set() {
    local tmp
    tmp=$(mktemp "$FORGEJO_INI.XXXXXX")
    INI_SECTION=$1 INI_KEY=$2 INI_VALUE=$3 awk '
        # Blank lines are held back, so a key added to a section lands before them.
        function blanks() { while (held > 0) { print ""; held-- } }
        function add() { if (cur == sec && !done) { print key " = " val; done = 1 } }
        BEGIN { sec = ENVIRON["INI_SECTION"]; key = ENVIRON["INI_KEY"]; val = ENVIRON["INI_VALUE"]; cur = ""; held = 0 }
        /^[ \t]*$/ { held++; next }
        /^[ \t]*\[[^]]*\][ \t]*$/ {
            add(); blanks()
            cur = $0; sub(/^[ \t]*\[/, "", cur); sub(/\][ \t]*$/, "", cur)
            print; next
        }
        {
            blanks()
            line = $0; sub(/^[ \t]*/, "", line)
            if (cur == sec && index(line, key) == 1 && substr(line, length(key) + 1) ~ /^[ \t]*=/) {
                if (!done) { print key " = " val; done = 1 }
                next
            }
            print
        }
        END {
            add()
            if (!done) { if (sec != "") { print ""; print "[" sec "]" } print key " = " val }
        }
    ' "$FORGEJO_INI" >"$tmp"
    chown git:git "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$FORGEJO_INI"
}

# The host name in the public URL, for DOMAIN and SSH_DOMAIN.
url_host() {
    local rest=${1#*://}
    rest=${rest%%/*}
    printf '%s' "${rest%%:*}"
}

# Creates app.ini on the first install (with fresh secrets, generated by Forgejo itself and never
# printed) and then sets every value the store manages; settings made by hand stay.
write_config() {
    local secret_key internal_token jwt_secret lfs_jwt_secret host registration_off=true
    if [[ ! -s $FORGEJO_INI ]]; then
        log "Writing a new $FORGEJO_INI with fresh secrets"
        secret_key=$(fj generate secret SECRET_KEY)
        internal_token=$(fj generate secret INTERNAL_TOKEN)
        jwt_secret=$(fj generate secret JWT_SECRET)
        lfs_jwt_secret=$(fj generate secret LFS_JWT_SECRET)
        install -m 0640 -o git -g git /dev/null "$FORGEJO_INI"
        cat >"$FORGEJO_INI" <<INI
; Forgejo configuration, written by PVE App Store (app forgejo). Values the store manages (names,
; ports, URLs, registration) are set again on upgrade and reconfigure; everything else is yours.
APP_NAME = Forgejo
RUN_USER = git
RUN_MODE = prod
WORK_PATH = ${FORGEJO_WORK}

[repository]
ROOT = ${FORGEJO_WORK}/data/forgejo-repositories

[server]
PROTOCOL = http
HTTP_ADDR = 0.0.0.0
APP_DATA_PATH = ${FORGEJO_WORK}/data
START_SSH_SERVER = true
BUILTIN_SSH_SERVER_USER = git
LFS_START_SERVER = true
LFS_JWT_SECRET = ${lfs_jwt_secret}
OFFLINE_MODE = true

[database]
DB_TYPE = sqlite3
PATH = ${FORGEJO_DB}
SQLITE_JOURNAL_MODE = WAL

[security]
INSTALL_LOCK = true
SECRET_KEY = ${secret_key}
INTERNAL_TOKEN = ${internal_token}

[oauth2]
JWT_SECRET = ${jwt_secret}

[service]
REQUIRE_SIGNIN_VIEW = false
DEFAULT_KEEP_EMAIL_PRIVATE = true

[session]
PROVIDER = file

[log]
MODE = console
LEVEL = Info
ROOT_PATH = ${FORGEJO_WORK}/log

[mailer]
ENABLED = false

[cron.update_checker]
ENABLED = false
INI
    fi
    host=$(url_host "$FJ_ROOT_URL")
    if [[ $FJ_ALLOW_REGISTRATION == true ]]; then registration_off=false; fi
    ini_set "" APP_NAME "$FJ_APP_NAME"
    ini_set server HTTP_PORT "$FJ_HTTP_PORT"
    ini_set server ROOT_URL "$FJ_ROOT_URL"
    ini_set server DOMAIN "$host"
    ini_set server SSH_DOMAIN "$host"
    ini_set server SSH_PORT "$FJ_SSH_PORT"
    ini_set server SSH_LISTEN_PORT "$FJ_SSH_PORT"
    ini_set service DISABLE_REGISTRATION "$registration_off"
    log "Configured $FORGEJO_INI: $FJ_ROOT_URL (HTTP $FJ_HTTP_PORT, SSH $FJ_SSH_PORT, registration $([[ $registration_off == true ]] && echo off || echo on))"
}

write_unit() {
    cat >"$UNIT" <<UNIT
# Managed by PVE App Store (app forgejo): rewritten on install and upgrade.
[Unit]
Description=Forgejo
After=network.target

[Service]
Type=simple
User=git
Group=git
WorkingDirectory=${FORGEJO_WORK}
ExecStart=${FORGEJO_BIN} web --work-path ${FORGEJO_WORK} --config ${FORGEJO_INI}
Environment=USER=git HOME=${FORGEJO_WORK} GITEA_WORK_DIR=${FORGEJO_WORK} FORGEJO_WORK_DIR=${FORGEJO_WORK}
Restart=always
RestartSec=2s

[Install]
WantedBy=multi-user.target
UNIT
}

wait_for_forgejo() {
    log "Waiting for Forgejo on port $FJ_HTTP_PORT"
    for _ in $(seq 1 90); do
        if curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:$FJ_HTTP_PORT/api/healthz" 2>/dev/null; then
            log "Forgejo is healthy"
            return 0
        fi
        sleep 1
    done
    journalctl -u forgejo --no-pager -n 40 >&2 || true
    die "Forgejo did not become healthy within 90 seconds"
}

user_exists() {
    [[ $(db "SELECT COUNT(*) FROM \"user\" WHERE lower_name = '$FJ_ADMIN_USER' AND type = 0;") -gt 0 ]]
}

# Creates the admin account when the database does not have it yet. The CLI only takes a
# password on its command line, so the account starts with a random one (output discarded);
# set_admin_password gives it the real one through the API.
ensure_admin() {
    if user_exists; then
        log "The account '$FJ_ADMIN_USER' exists; its password and admin rights are set again"
        return 0
    fi
    log "Creating the admin account '$FJ_ADMIN_USER'"
    fj_cfg admin user create --admin --username "$FJ_ADMIN_USER" --email "$FJ_ADMIN_EMAIL" \
        --random-password --random-password-length 32 --must-change-password=false >/dev/null ||
        die "forgejo admin user create failed"
}

# Sets the admin's password through the API: a short-lived admin token (created with the CLI,
# sent in a private curl config file) authorises the change, the password travels in the JSON
# body on standard input, and the token is deleted again right after.
set_admin_password() {
    local name token hdr code
    name=appstore-setup-$(date +%s)-$$
    token=$(fj_cfg admin user generate-access-token --username "$FJ_ADMIN_USER" --token-name "$name" \
        --scopes write:admin --raw) || die "could not create a setup token for '$FJ_ADMIN_USER'"
    [[ $token =~ ^[0-9a-f]{20,}$ ]] || die "unexpected answer from generate-access-token"
    hdr=$(mktemp)
    chmod 0600 "$hdr"
    printf 'header = "Authorization: token %s"\n' "$token" >"$hdr"
    code=$(printf '%s' "$FJ_ADMIN_PASSWORD" |
        jq -Rs --arg u "$FJ_ADMIN_USER" \
            '{login_name: $u, source_id: 0, password: ., must_change_password: false, admin: true, active: true, prohibit_login: false}' |
        curl -sS --max-time 30 -K "$hdr" -o /dev/null -w '%{http_code}' -X PATCH \
            -H 'Content-Type: application/json' --data-binary @- \
            "http://127.0.0.1:$FJ_HTTP_PORT/api/v1/admin/users/$FJ_ADMIN_USER" || true)
    rm -f "$hdr"
    db "DELETE FROM access_token WHERE name = '$name';" ||
        warn "could not delete the setup token '$name'; delete it under Settings > Applications"
    [[ $code == 200 ]] || die "setting the password of '$FJ_ADMIN_USER' failed (HTTP ${code:-none})"
    log "Password of '$FJ_ADMIN_USER' set"
}

# Proves the login works: the API with basic authentication (credentials in a private curl
# config file). Accounts with two-factor authentication cannot log in that way; then it warns.
check_login() {
    local auth code
    auth=$(mktemp)
    chmod 0600 "$auth"
    printf 'header = "Authorization: Basic %s"\n' \
        "$(printf '%s:%s' "$FJ_ADMIN_USER" "$FJ_ADMIN_PASSWORD" | base64 -w0)" >"$auth"
    code=$(curl -sS --max-time 10 -K "$auth" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:$FJ_HTTP_PORT/api/v1/user" || true)
    rm -f "$auth"
    if [[ $code == 200 ]]; then
        log "Login as '$FJ_ADMIN_USER' works"
    elif [[ $code == 401 && $(db "SELECT COUNT(*) FROM two_factor WHERE uid = (SELECT id FROM \"user\" WHERE lower_name = '$FJ_ADMIN_USER');" 2>/dev/null) -gt 0 ]]; then
        warn "'$FJ_ADMIN_USER' uses two-factor authentication, so the login could not be tested here"
    else
        die "login as '$FJ_ADMIN_USER' failed (HTTP ${code:-none})"
    fi
}
