#!/usr/bin/env bash
# Shared helpers for the homebridge scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Node.js, npm and node-pty come from Debian's archive; Homebridge and the
# Homebridge UI from the npm registry at the versions pinned below.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The newest releases that run on Node.js 20 (Debian 13's): Homebridge 2.x and UI 5.11+ need 22.
HOMEBRIDGE_VERSION=1.11.4
UI_VERSION=5.10.0
APP_DIR=/opt/homebridge
DATA_DIR=/var/lib/homebridge
PLUGIN_DIR=$DATA_DIR/node_modules
SERVICE=homebridge
SERVICE_USER=homebridge
UNIT=/etc/systemd/system/$SERVICE.service
ASSETS=$(dirname "${BASH_SOURCE[0]}")
# node-node-pty: Debian's build of node-pty for its Node.js, used by the UI's terminal and log views
# (see node-pty-debian/). npm stays installed: the UI installs plugins with it.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(nodejs npm node-node-pty ca-certificates curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8581" or "8581.0".
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
    if [[ -n ${HB_USER:-} && ! $HB_USER =~ ^[a-z][a-z0-9._-]{0,31}$ ]]; then
        die "HB_USER must match ^[a-z][a-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${HB_PASSWORD:-} ]]; then
        ((${#HB_PASSWORD} >= 8)) || die "HB_PASSWORD must be at least 8 characters"
        [[ $HB_PASSWORD != *$'\n'* ]] || die "HB_PASSWORD must be a single line"
    fi
    if [[ -n ${HB_PORT:-} ]]; then
        HB_PORT=$(normalize_port "$HB_PORT")
    fi
    return 0
}

install_packages() {
    log "Installing ${PACKAGES[*]} from the Debian archive"
    apt-get update -q
    apt_install "${PACKAGES[@]}"
    log "Node.js $(node --version), npm $(npm --version)"
}

installed_version() {
    node -p "require('$APP_DIR/node_modules/$1/package.json').version" 2>/dev/null || echo none
}

# Installs (or moves to) the pinned Homebridge and Homebridge UI under $APP_DIR, owned by root. The
# UI's node-pty dependency is satisfied by the stand-in package, so npm runs no install scripts and
# nothing is downloaded from outside the npm registry or compiled.
install_homebridge() {
    local tmp
    install -d -m 0755 "$APP_DIR" "$APP_DIR/node-pty-debian"
    install -m 0644 "$ASSETS/node-pty-debian/package.json" "$ASSETS/node-pty-debian/index.js" \
        "$APP_DIR/node-pty-debian/"
    tmp=$(mktemp "$APP_DIR/.package.json.XXXXXX")
    cat >"$tmp" <<JSON
{
  "name": "homebridge-appstore",
  "description": "Homebridge as installed by PVE App Store; the versions are pinned by the catalog.",
  "private": true,
  "dependencies": {
    "homebridge": "${HOMEBRIDGE_VERSION}",
    "homebridge-config-ui-x": "${UI_VERSION}",
    "@homebridge/node-pty-prebuilt-multiarch": "file:./node-pty-debian"
  }
}
JSON
    chmod 0644 "$tmp"
    mv -f "$tmp" "$APP_DIR/package.json"
    log "Installing homebridge@${HOMEBRIDGE_VERSION} and homebridge-config-ui-x@${UI_VERSION} from the npm registry"
    (cd "$APP_DIR" && npm install --omit=dev --ignore-scripts --install-links \
        --no-audit --no-fund --no-update-notifier --loglevel=warn)
    [[ $(installed_version homebridge) == "$HOMEBRIDGE_VERSION" ]] ||
        die "npm installed homebridge $(installed_version homebridge), expected ${HOMEBRIDGE_VERSION}"
    [[ $(installed_version homebridge-config-ui-x) == "$UI_VERSION" ]] ||
        die "npm installed homebridge-config-ui-x $(installed_version homebridge-config-ui-x), expected ${UI_VERSION}"
    # The UI refuses to start without a working node-pty: check it here, with a clear message.
    (cd "$APP_DIR" && node -e 'require("@homebridge/node-pty-prebuilt-multiarch").spawn' >/dev/null) ||
        die "node-pty (Debian's node-node-pty) cannot be loaded"
    log "Homebridge ${HOMEBRIDGE_VERSION} and Homebridge UI ${UI_VERSION} installed"
}

ensure_user() {
    if ! id "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Homebridge" "$SERVICE_USER"
        log "Created the system user $SERVICE_USER"
    fi
}

# The volume may come from an earlier container whose homebridge user had another uid. Plugins the
# UI installs go to $PLUGIN_DIR, an npm project of its own in the storage directory.
prepare_storage() {
    install -d -m 0750 "$DATA_DIR"
    install -d -m 0755 "$PLUGIN_DIR"
    if [[ ! -e $DATA_DIR/package.json ]]; then
        printf '{\n  "private": true,\n  "description": "Homebridge plugins installed from the UI",\n  "dependencies": {}\n}\n' \
            >"$DATA_DIR/package.json"
    fi
    chown -R "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR"
}

# Sets the UI's port in config.json, or writes a first config.json with only the UI's block: the
# service fills in the HomeKit bridge (name, id, PIN, port) on its first start. Other settings stay.
write_config() {
    # shellcheck disable=SC2016 # JavaScript template strings, not shell
    HB_CONFIG=$DATA_DIR/config.json HB_PORT=$HB_PORT node -e '
        const fs = require("fs");
        const file = process.env.HB_CONFIG;
        const port = Number(process.env.HB_PORT);
        let config = { accessories: [], platforms: [] };
        if (fs.existsSync(file)) {
            try {
                config = JSON.parse(fs.readFileSync(file, "utf8"));
            } catch (e) {
                const aside = `${file}.invalid.${Date.now()}`;
                fs.renameSync(file, aside);
                console.log(`==> config.json was not valid JSON; moved it to ${aside}`);
                config = { accessories: [], platforms: [] };
            }
        }
        if (!Array.isArray(config.platforms)) config.platforms = [];
        let ui = config.platforms.find((p) => p && p.platform === "config");
        if (!ui) {
            ui = { name: "Config", platform: "config" };
            config.platforms.push(ui);
        }
        ui.port = port;
        const tmp = `${file}.appstore-tmp`;
        fs.writeFileSync(tmp, JSON.stringify(config, null, 4) + "\n", { mode: 0o640 });
        fs.renameSync(tmp, file);
    '
    chown "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR/config.json"
    log "Homebridge UI port set to ${HB_PORT} in $DATA_DIR/config.json"
}

# Creates or updates the UI administrator in auth.json, in the UI's own format (PBKDF2-SHA512,
# 1000 rounds, 64 bytes, a random salt). Other UI users are kept. The password reaches node on stdin.
write_admin() {
    # shellcheck disable=SC2016 # JavaScript template strings, not shell
    printf '%s' "$HB_PASSWORD" | HB_AUTH=$DATA_DIR/auth.json HB_USER=$HB_USER node -e '
        const fs = require("fs");
        const crypto = require("crypto");
        const file = process.env.HB_AUTH;
        const username = process.env.HB_USER;
        const password = fs.readFileSync(0, "utf8");
        let users = [];
        try {
            users = JSON.parse(fs.readFileSync(file, "utf8"));
        } catch (e) {
            users = [];
        }
        if (!Array.isArray(users)) users = [];
        const salt = crypto.randomBytes(32).toString("hex");
        const hashedPassword = crypto.pbkdf2Sync(password, salt, 1000, 64, "sha512").toString("hex");
        let user = users.find((u) => u && typeof u.username === "string" &&
            u.username.toLowerCase() === username.toLowerCase());
        if (user) {
            Object.assign(user, { hashedPassword, salt, admin: true });
        } else {
            const id = users.reduce((max, u) => Math.max(max, Number(u && u.id) || 0), 0) + 1;
            users.push({ id, username, name: username, hashedPassword, salt, admin: true });
        }
        const tmp = `${file}.appstore-tmp`;
        fs.writeFileSync(tmp, JSON.stringify(users, null, 4) + "\n", { mode: 0o600 });
        fs.renameSync(tmp, file);
    '
    chown "$SERVICE_USER:$SERVICE_USER" "$DATA_DIR/auth.json"
    chmod 0600 "$DATA_DIR/auth.json"
    log "Set the password of the UI administrator '${HB_USER}' in $DATA_DIR/auth.json"
}

write_unit() {
    local tmp
    tmp=$(mktemp /etc/systemd/system/.homebridge.XXXXXX)
    cat >"$tmp" <<UNIT
# Managed by PVE App Store (app homebridge).
[Unit]
Description=Homebridge with the Homebridge UI
Documentation=https://homebridge.io
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=${SERVICE_USER}
Group=${SERVICE_USER}
WorkingDirectory=${DATA_DIR}
Environment=HOME=${DATA_DIR}
Environment=PATH=${APP_DIR}/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# hb-service runs the UI and starts Homebridge as its child; plugins load only from the storage.
ExecStart=/usr/bin/node ${APP_DIR}/node_modules/homebridge-config-ui-x/dist/bin/hb-service.js run -U ${DATA_DIR} -P ${PLUGIN_DIR} --strict-plugin-resolution
# hb-service stops Homebridge itself on SIGTERM (exiting with 2 when it had to force it); the UI
# restarts the service by exiting.
KillMode=process
Restart=always
RestartSec=3
SuccessExitStatus=2

[Install]
WantedBy=multi-user.target
UNIT
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT"
    systemctl daemon-reload
}

http_code() {
    curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${HB_PORT}$1" 2>/dev/null || true
}

wait_for_ui() {
    local code i
    log "Waiting for the Homebridge UI on port ${HB_PORT}"
    for i in $(seq 1 90); do
        code=$(http_code /)
        if [[ $code == 200 ]]; then
            log "The Homebridge UI answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$SERVICE" --no-pager -n 40 >&2 || true
    tail -n 40 "$DATA_DIR/homebridge.log" >&2 2>/dev/null || true
    die "the Homebridge UI did not answer on port ${HB_PORT} within 90 seconds"
}

# Logs in through the UI's API. The JSON body (with the password) is built by node from stdin and
# handed to curl in a private file. 201 is a login; 412 means the password was right and the
# account has two-factor authentication on.
check_login() {
    local dir code
    dir=$(mktemp -d)
    chmod 0700 "$dir"
    printf '%s' "$HB_PASSWORD" | HB_USER=$HB_USER node -e '
        const password = require("fs").readFileSync(0, "utf8");
        process.stdout.write(JSON.stringify({ username: process.env.HB_USER, password }));
    ' >"$dir/body"
    code=$(curl -sS --max-time 15 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
        --data "@$dir/body" "http://127.0.0.1:${HB_PORT}/api/auth/login" || true)
    rm -rf "$dir"
    case $code in
        200 | 201) log "Login to the UI as '${HB_USER}' works" ;;
        412) log "The password of '${HB_USER}' is accepted (the account asks for a two-factor code)" ;;
        *) die "login to the UI as '${HB_USER}' failed (HTTP ${code:-none})" ;;
    esac
}
