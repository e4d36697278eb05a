#!/usr/bin/env bash
# Shared helpers for the actual-budget scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Node.js, npm and the compiler come from Debian's archive, the
# Actual sync server from the npm registry at the version pinned below.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# 25.6.0 is the newest @actual-app/sync-server that runs on Node.js 20 (Debian 13's): every later
# release requires Node.js 22.
SERVER_VERSION=25.6.0
APP_DIR=/opt/actual-budget
SERVER_DIR=$APP_DIR/node_modules/@actual-app/sync-server
DATA_DIR=/var/lib/actual-budget
TLS_DIR=$DATA_DIR/tls
CONF_DIR=/etc/actual-budget
CONFIG=$CONF_DIR/config.json
SERVICE=actual-budget
SERVICE_USER=actual
UNIT=/etc/systemd/system/$SERVICE.service
ASSETS=$(dirname "${BASH_SOURCE[0]}")
# The server's two native modules (better-sqlite3 and bcrypt) publish their binaries only outside
# npm, so npm builds them from the sources in their npm packages: g++, make and python3 (node-gyp
# comes with Debian's npm). openssl makes the self-signed certificate.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(nodejs npm g++ make python3 openssl ca-certificates curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "5006" or "5006.0".
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
    if [[ -n ${AB_PASSWORD:-} ]]; then
        ((${#AB_PASSWORD} >= 8)) || die "AB_PASSWORD must be at least 8 characters"
        [[ $AB_PASSWORD != *$'\n'* ]] || die "AB_PASSWORD must be a single line"
    fi
    case ${AB_HTTPS:-true} in
        true | false) ;;
        *) die "AB_HTTPS must be true or false, not '${AB_HTTPS}'" ;;
    esac
    if [[ -n ${AB_PORT:-} ]]; then
        AB_PORT=$(normalize_port "$AB_PORT")
    fi
    return 0
}

scheme() {
    if [[ ${AB_HTTPS:-true} == true ]]; then echo https; else echo http; fi
}

install_packages() {
    log "Installing ${PACKAGES[*]} from the Debian archive"
    apt-get update -q
    apt_install "${PACKAGES[@]}"
    log "Node.js $(node --version), npm $(npm --version)"
}

installed_version() {
    node -p "require('$SERVER_DIR/package.json').version" 2>/dev/null || echo none
}

# Installs (or moves to) the pinned sync server under $APP_DIR, owned by root: the service only reads
# it. build_from_source keeps the native modules from trying to download binaries from outside npm.
install_server() {
    local tmp
    install -d -m 0755 "$APP_DIR"
    tmp=$(mktemp "$APP_DIR/.package.json.XXXXXX")
    cat >"$tmp" <<JSON
{
  "name": "actual-budget-appstore",
  "description": "The Actual sync server as installed by PVE App Store; the version is pinned by the catalog.",
  "private": true,
  "dependencies": {
    "@actual-app/sync-server": "${SERVER_VERSION}"
  }
}
JSON
    chmod 0644 "$tmp"
    mv -f "$tmp" "$APP_DIR/package.json"
    log "Installing @actual-app/sync-server@${SERVER_VERSION} from the npm registry (builds better-sqlite3 and bcrypt; a few minutes)"
    (cd "$APP_DIR" && npm_config_build_from_source=true npm install --omit=dev \
        --no-audit --no-fund --no-update-notifier --loglevel=warn)
    [[ $(installed_version) == "$SERVER_VERSION" ]] ||
        die "npm installed @actual-app/sync-server $(installed_version), expected ${SERVER_VERSION}"
    # Both native modules must load in this Node.js.
    (cd "$SERVER_DIR" && node -e 'require("better-sqlite3"); require("bcrypt")') ||
        die "the native modules of the sync server do not load"
    install -m 0644 "$ASSETS/set-password.mjs" "$APP_DIR/set-password.mjs"
    log "Actual sync server ${SERVER_VERSION} installed"
}

ensure_user() {
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Actual Budget sync server" "$SERVICE_USER"
        log "Created the system user $SERVICE_USER"
    fi
}

# The volume may come from an earlier container whose actual user had another uid.
prepare_data() {
    install -d -m 0750 "$DATA_DIR"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
}

# A self-signed certificate for the container's name and addresses, made once and kept on the data
# volume, so that a browser's exception for it survives a reinstall.
ensure_certificate() {
    local name ips san ip
    [[ -s $TLS_DIR/cert.pem && -s $TLS_DIR/key.pem ]] && return 0
    name=$(hostname)
    ips=$(hostname -I 2>/dev/null || true)
    san="DNS:${name},DNS:localhost,IP:127.0.0.1"
    for ip in $ips; do
        [[ $ip =~ ^[0-9.]+$ ]] && san+=",IP:${ip}"
    done
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$TLS_DIR"
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 3650 -subj "/CN=${name}" -addext "subjectAltName=${san}" \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null) ||
        die "openssl could not make the certificate"
    chown "$SERVICE_USER:$SERVICE_USER" "$TLS_DIR/key.pem" "$TLS_DIR/cert.pem"
    chmod 0600 "$TLS_DIR/key.pem"
    chmod 0644 "$TLS_DIR/cert.pem"
    log "Made a self-signed certificate for ${san}"
}

write_config() {
    local tmp tls=""
    if [[ ${AB_HTTPS:-true} == true ]]; then
        ensure_certificate
        tls=",
  \"https\": { \"key\": \"${TLS_DIR}/key.pem\", \"cert\": \"${TLS_DIR}/cert.pem\" }"
    fi
    install -d -m 0755 "$CONF_DIR"
    tmp=$(mktemp "$CONF_DIR/.config.json.XXXXXX")
    cat >"$tmp" <<JSON
{
  "dataDir": "${DATA_DIR}",
  "hostname": "0.0.0.0",
  "port": ${AB_PORT}${tls}
}
JSON
    chmod 0644 "$tmp"
    mv -f "$tmp" "$CONFIG"
    log "Wrote $CONFIG ($(scheme) on port ${AB_PORT})"
}

write_unit() {
    local tmp
    tmp=$(mktemp /etc/systemd/system/.actual-budget.XXXXXX)
    cat >"$tmp" <<UNIT
# Managed by PVE App Store (app actual-budget).
[Unit]
Description=Actual Budget sync server
Documentation=https://actualbudget.org/docs/
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SERVICE_USER}
Group=${SERVICE_USER}
WorkingDirectory=${DATA_DIR}
Environment=NODE_ENV=production
Environment=ACTUAL_CONFIG_PATH=${CONFIG}
Environment=ACTUAL_DATA_DIR=${DATA_DIR}
ExecStart=/usr/bin/node ${SERVER_DIR}/build/bin/actual-server.js --config ${CONFIG}
Restart=on-failure
RestartSec=5
SyslogIdentifier=actual-budget

[Install]
WantedBy=multi-user.target
UNIT
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT"
    systemctl daemon-reload
}

# GET on the server's own health endpoint; prints the body (empty when it does not answer).
health() {
    curl -sS --insecure --max-time 5 "$(scheme)://127.0.0.1:${AB_PORT}/health" 2>/dev/null || true
}

wait_for_server() {
    local i
    log "Waiting for the sync server on $(scheme)://127.0.0.1:${AB_PORT}"
    for i in $(seq 1 90); do
        if [[ $(health) == *'"UP"'* ]]; then
            log "The sync server answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    die "the sync server did not answer on port ${AB_PORT} within 90 seconds"
}

# Bootstraps the server with the password or replaces it (set-password.mjs), as the service user.
apply_password() {
    printf '%s' "$AB_PASSWORD" | runuser -u "$SERVICE_USER" -- env -i PATH=/usr/bin:/bin \
        NODE_ENV=production ACTUAL_CONFIG_PATH="$CONFIG" ACTUAL_DATA_DIR="$DATA_DIR" \
        node "$APP_DIR/set-password.mjs"
}

# Logs in through the server's API the way the app does; the JSON body (with the password) is built
# by node from stdin and handed to curl in a private file.
check_login() {
    local dir answer
    dir=$(mktemp -d)
    chmod 0700 "$dir"
    printf '%s' "$AB_PASSWORD" | node -e '
        const password = require("fs").readFileSync(0, "utf8");
        process.stdout.write(JSON.stringify({ loginMethod: "password", password }));
    ' >"$dir/body"
    answer=$(curl -sS --insecure --max-time 15 -H 'Content-Type: application/json' \
        --data "@$dir/body" "$(scheme)://127.0.0.1:${AB_PORT}/account/login" || true)
    rm -rf "$dir"
    [[ $answer == *'"token"'* ]] || die "login with the server password failed: ${answer:-no answer}"
    log "Login with the server password works"
}
