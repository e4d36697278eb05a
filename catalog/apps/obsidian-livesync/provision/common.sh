#!/usr/bin/env bash
# Shared helpers for the obsidian-livesync scripts. Sourced, not run; it expects the caller to have
# set `set -euo pipefail`. Settings come only from the environment declared in app.yml.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

COUCH_ETC=/opt/couchdb/etc
COUCH_LOCAL_D=$COUCH_ETC/local.d
# Settings this app owns; rewritten on every install, upgrade and reconfigure.
LIVESYNC_INI=$COUCH_LOCAL_D/50-appstore-livesync.ini
# Must stay the last file of CouchDB's ini chain: CouchDB writes runtime changes (the hashed admin
# password, its uuid and cookie secret, edits made in Fauxton) to the last file it loaded.
ADMIN_INI=$COUCH_LOCAL_D/99-appstore-admin.ini
DROPIN_DIR=/etc/systemd/system/couchdb.service.d
DATA_DIR=/var/lib/couchdb
# Apache CouchDB's repository signing key, trusted only when it has this fingerprint (the one the
# CouchDB project publishes for its packages).
COUCHDB_KEY_URL=https://couchdb.apache.org/repo/keys.asc
COUCHDB_KEY_FPR=390EF70BB1EA12B2773962950EE62FB37A00258D
COUCHDB_REPO=https://apache.jfrog.io/artifactory/couchdb-deb/
KEYRING=/etc/apt/keyrings/couchdb.asc
SOURCES=/etc/apt/sources.list.d/couchdb.sources
DEBCONF_CACHE=/var/cache/debconf/config.dat
OBSIDIAN_ORIGINS="app://obsidian.md, capacitor://localhost, http://localhost"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# Number inputs may arrive as "5984" or "5984.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    raw=$((10#$raw))
    printf '%s' "$raw"
}

# Checks the variables every script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${ADMIN_USER:-} && ! $ADMIN_USER =~ ^[a-z][a-z0-9_-]{0,31}$ ]]; then
        die "ADMIN_USER must match ^[a-z][a-z0-9_-]{0,31}\$"
    fi
    local password_re='^[^[:space:];][^[:space:]]{7,127}$'
    if [[ -n ${ADMIN_PASSWORD:-} && ! $ADMIN_PASSWORD =~ $password_re ]]; then
        die "ADMIN_PASSWORD must be 8-128 characters without whitespace and must not start with ';'"
    fi
    if [[ -n ${COUCHDB_DATABASE:-} && ! $COUCHDB_DATABASE =~ ^[a-z][a-z0-9_-]{0,63}$ ]]; then
        die "COUCHDB_DATABASE must match ^[a-z][a-z0-9_-]{0,63}\$"
    fi
    if [[ -n ${COUCHDB_PORT:-} ]]; then
        COUCHDB_PORT=$(normalize_port "$COUCHDB_PORT")
    fi
    return 0
}

# Downloads Apache's key file, checks that it holds the key with COUCHDB_KEY_FPR (gpg --show-keys
# lists the fingerprints without importing anything) and writes only that key to KEYRING, then adds
# the repository. Needs curl and gpg.
add_couchdb_repository() {
    local codename tmp home fprs
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-bookworm}")
    log "Adding Apache's CouchDB repository for ${codename} (key ${COUCHDB_KEY_FPR})"
    install -d -m 0755 /etc/apt/keyrings
    tmp=$(mktemp)
    home=$(mktemp -d)
    curl -fsSL --retry 3 "$COUCHDB_KEY_URL" -o "$tmp" || die "could not download $COUCHDB_KEY_URL"
    fprs=$(GNUPGHOME=$home gpg --batch --show-keys --with-colons "$tmp" 2>/dev/null |
        awk -F: '$1 == "pub" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }') || fprs=""
    if ! grep -qx "$COUCHDB_KEY_FPR" <<<"$fprs"; then
        rm -rf "$tmp" "$home"
        die "$COUCHDB_KEY_URL has no key with the fingerprint $COUCHDB_KEY_FPR (found: $(tr '\n' ' ' <<<"${fprs:-none}")); refusing to trust it"
    fi
    # The file may hold older keys as well; apt gets the pinned one only.
    GNUPGHOME=$home gpg --batch --quiet --import "$tmp" 2>/dev/null ||
        die "gpg could not read $COUCHDB_KEY_URL"
    GNUPGHOME=$home gpg --batch --armor --export "$COUCHDB_KEY_FPR" >"$tmp.export"
    gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || true
    rm -rf "$home"
    grep -q 'BEGIN PGP PUBLIC KEY BLOCK' "$tmp.export" || die "could not export the CouchDB key $COUCHDB_KEY_FPR"
    chmod 0644 "$tmp.export"
    mv -f "$tmp.export" "$KEYRING"
    rm -f "$tmp"
    cat >"$SOURCES" <<EOF
Types: deb
URIs: ${COUCHDB_REPO}
Suites: ${codename}
Components: main
Signed-By: ${KEYRING}
EOF
}

# debconf's cache keeps the answers given to the couchdb package, among them the Erlang cookie;
# it is world-readable by default.
protect_debconf_cache() {
    if [[ -f $DEBCONF_CACHE ]]; then
        chmod 0600 "$DEBCONF_CACHE"
    fi
}

cors_origins() {
    case ${CORS_ANY_ORIGIN:-false} in
        true | True | TRUE | 1 | yes) printf '*' ;;
        *) printf '%s' "$OBSIDIAN_ORIGINS" ;;
    esac
}

# Writes the LiveSync settings (see the plugin's setup_own_server.md) plus port and bind address.
write_livesync_ini() {
    local tmp
    install -d -m 0755 "$COUCH_LOCAL_D"
    tmp=$(mktemp "$COUCH_LOCAL_D/.livesync.XXXXXX")
    cat >"$tmp" <<EOF
; Managed by PVE App Store (app obsidian-livesync): rewritten on upgrade and reconfigure.
; Put your own settings in another local.d file or change them in Fauxton.

[couchdb]
single_node = true
max_document_size = 50000000

[chttpd]
bind_address = 0.0.0.0
port = ${COUCHDB_PORT}
require_valid_user = true
require_valid_user_except_for_up = true
max_http_request_size = 4294967296
enable_cors = true

[chttpd_auth]
require_valid_user = true
authentication_redirect = /_utils/session.html

[httpd]
WWW-Authenticate = Basic realm="couchdb"
enable_cors = true

[cors]
origins = $(cors_origins)
credentials = true
headers = accept, authorization, content-type, origin, referer
methods = GET, PUT, POST, HEAD, DELETE
max_age = 3600
EOF
    chmod 0640 "$tmp"
    mv -f "$tmp" "$LIVESYNC_INI"
    log "Wrote $LIVESYNC_INI (port ${COUCHDB_PORT}, CORS origins: $(cors_origins))"
}

# Replaces the [admins] section of the admin ini with one entry for ADMIN_USER, keeping every other
# section (CouchDB stores its uuid and cookie secret there). CouchDB hashes the plain-text password
# on its next start and writes the hash back into this file.
write_admin_ini() {
    local tmp
    install -d -m 0755 "$COUCH_LOCAL_D"
    tmp=$(mktemp "$COUCH_LOCAL_D/.admin.XXXXXX")
    chmod 0600 "$tmp"
    if [[ -f $ADMIN_INI ]]; then
        awk '/^[[:space:]]*\[/ { skip = ($0 ~ /^[[:space:]]*\[admins\][[:space:]]*$/) }
            !skip { line[++n] = $0 }
            END { while (n > 0 && line[n] ~ /^[[:space:]]*$/) n--; for (i = 1; i <= n; i++) print line[i] }' \
            "$ADMIN_INI" >"$tmp"
    else
        printf '; Managed by PVE App Store (app obsidian-livesync). CouchDB also writes here.\n' >"$tmp"
    fi
    printf '\n[admins]\n%s = %s\n' "$ADMIN_USER" "$ADMIN_PASSWORD" >>"$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$ADMIN_INI"
    log "Wrote the administrator '${ADMIN_USER}' to $ADMIN_INI (CouchDB hashes it on start)"
}

# Keeps Erlang distribution and epmd on loopback: a single node never needs them on the network.
write_systemd_dropin() {
    install -d -m 0755 "$DROPIN_DIR"
    cat >"$DROPIN_DIR/appstore.conf" <<'EOF'
# Managed by PVE App Store (app obsidian-livesync).
[Service]
Environment="ERL_FLAGS=-kernel inet_dist_use_interface {127,0,0,1}"
Environment=ERL_EPMD_ADDRESS=127.0.0.1
EOF
}

fix_ownership() {
    if getent passwd couchdb >/dev/null; then
        chown -R couchdb:couchdb "$COUCH_LOCAL_D"
        find "$COUCH_LOCAL_D" -name '*.ini' -exec chmod 0640 {} +
        # The data volume may come from an earlier container whose couchdb user had another uid.
        install -d -m 0750 "$DATA_DIR"
        chown -R couchdb:couchdb "$DATA_DIR"
    fi
}

# curl with the admin credentials taken from a private config file, so they never appear on a
# command line.
CURL_AUTH_FILE=""
cleanup_auth() { [[ -n $CURL_AUTH_FILE ]] && rm -f "$CURL_AUTH_FILE"; }
couch_auth_curl() {
    if [[ -z $CURL_AUTH_FILE ]]; then
        CURL_AUTH_FILE=$(mktemp)
        chmod 0600 "$CURL_AUTH_FILE"
        trap cleanup_auth EXIT
        printf 'header = "Authorization: Basic %s"\n' \
            "$(printf '%s:%s' "$ADMIN_USER" "$ADMIN_PASSWORD" | base64 -w0)" >"$CURL_AUTH_FILE"
    fi
    curl -sS --max-time 20 -K "$CURL_AUTH_FILE" "$@"
}

wait_for_couchdb() {
    local url="http://127.0.0.1:${COUCHDB_PORT}/_up" i
    log "Waiting for CouchDB on port ${COUCHDB_PORT}"
    for i in $(seq 1 90); do
        if curl -fsS --max-time 5 -o /dev/null "$url" 2>/dev/null; then
            log "CouchDB answers on $url"
            return 0
        fi
        if ((i % 15 == 0)); then
            log "still waiting ($((i * 2))s)"
        fi
        sleep 2
    done
    journalctl -u couchdb --no-pager -n 40 >&2 || true
    die "CouchDB did not come up on port ${COUCHDB_PORT} within 180 seconds"
}

# GET /_session answers with the authenticated user context; expect our user with the _admin role.
check_admin_login() {
    local body
    body=$(couch_auth_curl "http://127.0.0.1:${COUCHDB_PORT}/_session" || true)
    if [[ $body != *"\"name\":\"${ADMIN_USER}\""* || $body != *'"_admin"'* ]]; then
        die "CouchDB did not accept the administrator '${ADMIN_USER}': ${body:-no answer}"
    fi
    log "Administrator '${ADMIN_USER}' can log in"
}

check_password_hashed() {
    if grep -Eq "^${ADMIN_USER}[[:space:]]*=[[:space:]]*-(pbkdf2|hashed)" "$ADMIN_INI"; then
        log "The administrator password is stored hashed"
    else
        warn "the administrator password is not hashed yet in $ADMIN_INI; CouchDB hashes it on its next start"
    fi
}

# PUT /<db>: 201/202 = created, 412 = it already exists.
ensure_database() {
    local db=$1 code
    code=$(couch_auth_curl -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:${COUCHDB_PORT}/${db}")
    case $code in
        201 | 202) log "Created database '$db'" ;;
        412) log "Database '$db' already exists" ;;
        *) die "could not create database '$db' (HTTP $code)" ;;
    esac
}
