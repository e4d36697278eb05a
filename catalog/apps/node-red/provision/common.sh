#!/usr/bin/env bash
# Shared helpers for the node-red scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Node.js and npm come from Debian's archive, Node-RED from the npm registry at
# the version pinned below.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# Node-RED 4.1 is the newest line that runs on Node.js 20 (Debian 13's); 5.x needs Node.js 22.
NODE_RED_VERSION=4.1.15
APP_DIR=/opt/node-red
DATA_DIR=/var/lib/node-red
SETTINGS=$DATA_DIR/settings.js
SERVICE=node-red
SERVICE_USER=nodered
UNIT=/etc/systemd/system/$SERVICE.service
# npm installs the palette's nodes at run time, so it stays installed.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(nodejs npm ca-certificates curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "1880" or "1880.0".
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
    if [[ -n ${NR_USER:-} && ! $NR_USER =~ ^[a-z][a-z0-9._-]{0,31}$ ]]; then
        die "NR_USER must match ^[a-z][a-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${NR_PASSWORD:-} ]]; then
        ((${#NR_PASSWORD} >= 8)) || die "NR_PASSWORD must be at least 8 characters"
        [[ $NR_PASSWORD != *$'\n'* ]] || die "NR_PASSWORD must be a single line"
    fi
    case ${NR_ANONYMOUS_READ:-false} in
        true | false) ;;
        *) die "NR_ANONYMOUS_READ must be true or false, not '${NR_ANONYMOUS_READ}'" ;;
    esac
    if [[ -n ${NR_PORT:-} ]]; then
        NR_PORT=$(normalize_port "$NR_PORT")
    fi
    return 0
}

install_packages() {
    log "Installing ${PACKAGES[*]} from the Debian archive"
    apt-get update -q
    apt_install "${PACKAGES[@]}"
    log "Node.js $(node --version), npm $(npm --version)"
}

# Installs (or moves to) the pinned Node-RED under $APP_DIR, owned by root: the service only reads it.
install_node_red() {
    local tmp installed
    install -d -m 0755 "$APP_DIR"
    tmp=$(mktemp "$APP_DIR/.package.json.XXXXXX")
    cat >"$tmp" <<JSON
{
  "name": "node-red-appstore",
  "description": "Node-RED as installed by PVE App Store; the version is pinned by the catalog.",
  "private": true,
  "dependencies": {
    "node-red": "${NODE_RED_VERSION}"
  }
}
JSON
    chmod 0644 "$tmp"
    mv -f "$tmp" "$APP_DIR/package.json"
    log "Installing node-red@${NODE_RED_VERSION} from the npm registry into $APP_DIR"
    (cd "$APP_DIR" && npm install --omit=dev --no-audit --no-fund --no-update-notifier --loglevel=warn)
    installed=$(node -p 'require("/opt/node-red/node_modules/node-red/package.json").version')
    [[ $installed == "$NODE_RED_VERSION" ]] || die "npm installed node-red ${installed}, expected ${NODE_RED_VERSION}"
    log "Node-RED ${installed} installed"
}

ensure_user() {
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Node-RED" "$SERVICE_USER"
        log "Created the system user $SERVICE_USER"
    fi
}

# The volume may come from an earlier container whose nodered user had another uid.
prepare_data() {
    install -d -m 0750 "$DATA_DIR"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
}

# Prints the bcrypt hash of NR_PASSWORD; the password reaches node on stdin, never on a command line.
password_hash() {
    printf '%s' "$NR_PASSWORD" | node -e '
        const bcrypt = require("/opt/node-red/node_modules/bcryptjs");
        const password = require("fs").readFileSync(0, "utf8");
        process.stdout.write(bcrypt.hashSync(password, 10));
    '
}

# settings.js with the editor login. The user's own settings go in settings.local.js, which is merged
# in but cannot override the login or the port.
write_settings() {
    local hash tmp anonymous=""
    hash=$(password_hash)
    [[ $hash =~ ^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$ ]] || die "could not hash the editor password"
    if [[ ${NR_ANONYMOUS_READ:-false} == true ]]; then
        anonymous='
        default: { permissions: "read" },'
    fi
    tmp=$(mktemp "$DATA_DIR/.settings.js.XXXXXX")
    cat >"$tmp" <<SETTINGS
// Managed by PVE App Store (app node-red): rewritten on install, upgrade and reconfigure.
// Put your own settings in settings.local.js next to this file, as
//     module.exports = { functionGlobalContext: { ... } };
// They are merged over the defaults below and kept; the login and the port stay the store's.
// Documentation of every setting: https://nodered.org/docs/user-guide/runtime/settings-file
const fs = require("fs");
const path = require("path");

const managed = {
    uiPort: ${NR_PORT},
    adminAuth: {
        type: "credentials",
        users: [{ username: "${NR_USER}", password: "${hash}", permissions: "*" }],${anonymous}
    },
};

const defaults = {
    flowFile: "flows.json",
    flowFilePretty: true,
    functionExternalModules: true,
    diagnostics: { enabled: true, ui: true },
    runtimeState: { enabled: false, ui: false },
    logging: { console: { level: "info", metrics: false, audit: false } },
    editorTheme: { projects: { enabled: false } },
};

const localFile = path.join(__dirname, "settings.local.js");
const local = fs.existsSync(localFile) ? require(localFile) : {};

module.exports = Object.assign({}, defaults, local, managed);
SETTINGS
    chown "$SERVICE_USER:$SERVICE_USER" "$tmp"
    chmod 0600 "$tmp"
    mv -f "$tmp" "$SETTINGS"
    log "Wrote $SETTINGS (port ${NR_PORT}, editor user '${NR_USER}', anonymous read-only: ${NR_ANONYMOUS_READ:-false})"
}

write_unit() {
    local tmp
    tmp=$(mktemp /etc/systemd/system/.node-red.XXXXXX)
    cat >"$tmp" <<UNIT
# Managed by PVE App Store (app node-red).
[Unit]
Description=Node-RED flow editor and runtime
Documentation=https://nodered.org/docs/
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SERVICE_USER}
Group=${SERVICE_USER}
WorkingDirectory=${DATA_DIR}
Environment=HOME=${DATA_DIR}
Environment=NODE_ENV=production
ExecStart=/usr/bin/node ${APP_DIR}/node_modules/node-red/red.js --userDir ${DATA_DIR}
# Node-RED stops its flows cleanly on SIGINT.
KillSignal=SIGINT
TimeoutStopSec=30
Restart=on-failure
RestartSec=5
SyslogIdentifier=node-red

[Install]
WantedBy=multi-user.target
UNIT
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT"
    systemctl daemon-reload
}

http_code() {
    curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${NR_PORT}$1" 2>/dev/null || true
}

# The editor page answers 200 once the runtime has started.
wait_for_node_red() {
    local code i
    log "Waiting for Node-RED on port ${NR_PORT}"
    for i in $(seq 1 90); do
        code=$(http_code /)
        if [[ $code == 200 ]]; then
            log "Node-RED answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    die "Node-RED did not answer on port ${NR_PORT} within 90 seconds"
}

# Logs in to the editor API the way the editor does; the password goes to curl from a private file.
check_login() {
    local dir code
    dir=$(mktemp -d)
    chmod 0700 "$dir"
    printf '%s' "$NR_PASSWORD" >"$dir/password"
    code=$(curl -sS --max-time 15 -o /dev/null -w '%{http_code}' \
        --data 'client_id=node-red-editor&grant_type=password&scope=*' \
        --data-urlencode "username=${NR_USER}" --data-urlencode "password@$dir/password" \
        "http://127.0.0.1:${NR_PORT}/auth/token" || true)
    rm -rf "$dir"
    [[ $code == 200 ]] || die "login to the editor as '${NR_USER}' failed (HTTP ${code:-none})"
    log "Login to the editor as '${NR_USER}' works"
    # Without anonymous access the editor's API must refuse a request without a token.
    code=$(http_code /settings)
    if [[ ${NR_ANONYMOUS_READ:-false} == true ]]; then
        [[ $code == 200 ]] || die "anonymous read-only access is on, but /settings answered HTTP ${code:-none}"
    else
        [[ $code == 401 ]] || die "the editor API answered HTTP ${code:-none} without a login (expected 401)"
    fi
}
