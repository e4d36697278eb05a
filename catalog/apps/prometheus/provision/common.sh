#!/usr/bin/env bash
# Shared helpers for the prometheus scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

PROM_DEFAULTS=/etc/default/prometheus
NODE_DEFAULTS=/etc/default/prometheus-node-exporter
PROM_CONFIG=/etc/prometheus/prometheus.yml
WEB_CONFIG=/etc/prometheus/web-config.yml
# Prometheus scrapes its own metrics endpoint, which the web config protects, with an internal
# account of its own: a random password made by these scripts, kept in SCRAPE_SECRET (readable by
# root and the prometheus group only), so the user's password is stored nowhere but as a hash.
SCRAPE_USER=appstore-scrape
SCRAPE_SECRET=/etc/prometheus/self-scrape.secret
TSDB_ROOT=/var/lib/prometheus
TSDB_DIR=$TSDB_ROOT/metrics2
NODE_PORT=9100
MARK='Managed by PVE App Store (app prometheus)'
# promtool comes with prometheus; htpasswd (apache2-utils) makes the bcrypt hash.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(prometheus prometheus-node-exporter apache2-utils curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "9090" or "9090.0".
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
    if [[ -n ${PROM_USER:-} && ! $PROM_USER =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$ ]]; then
        die "PROM_USER must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}\$"
    fi
    if [[ ${PROM_USER:-} == "$SCRAPE_USER" ]]; then
        die "the username '$SCRAPE_USER' is reserved for Prometheus' own scrapes; choose another one"
    fi
    if [[ -n ${PROM_PASSWORD:-} ]]; then
        ((${#PROM_PASSWORD} >= 8 && ${#PROM_PASSWORD} <= 72)) || die "PROM_PASSWORD must have 8 to 72 characters"
        [[ $PROM_PASSWORD != *[$'\n\r']* ]] || die "PROM_PASSWORD must be a single line"
    fi
    if [[ -n ${PROM_PORT:-} ]]; then
        PROM_PORT=$(normalize_port "$PROM_PORT")
        ((PROM_PORT != NODE_PORT)) || die "port $NODE_PORT is taken by the node exporter"
    fi
    if [[ -n ${PROM_RETENTION:-} && ! $PROM_RETENTION =~ ^[1-9][0-9]{0,3}[hdwy]$ ]]; then
        die "PROM_RETENTION must be a number with a unit h, d, w or y (e.g. 15d)"
    fi
    case ${PROM_SCRAPE_INTERVAL:-15s} in
        15s | 30s | 60s) ;;
        *) die "PROM_SCRAPE_INTERVAL must be 15s, 30s or 60s" ;;
    esac
    case ${NODE_EXPORTER_PUBLIC:-false} in
        true | false) ;;
        *) die "NODE_EXPORTER_PUBLIC must be true or false" ;;
    esac
    return 0
}

# Keeps the file Debian shipped next to ours, once.
keep_debian_copy() {
    local file=$1
    if [[ -f $file && ! -f $file.debian ]] && ! grep -q "$MARK" "$file"; then
        cp -p "$file" "$file.debian"
    fi
}

# Writes stdin to a file atomically with the given mode and owner.
write_file() {
    local dest=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp "$(dirname "$dest")/.$(basename "$dest").XXXXXX")
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$dest"
}

# The volume may come from an earlier container whose prometheus user had another uid.
prepare_storage() {
    install -d -m 0755 -o prometheus -g prometheus "$TSDB_ROOT"
    install -d -m 0755 "$TSDB_DIR"
    chown -R prometheus:prometheus "$TSDB_DIR"
    chown prometheus:prometheus "$TSDB_ROOT"
}

write_defaults() {
    local listen=127.0.0.1
    [[ $NODE_EXPORTER_PUBLIC == true ]] && listen=0.0.0.0
    keep_debian_copy "$PROM_DEFAULTS"
    keep_debian_copy "$NODE_DEFAULTS"
    write_file "$PROM_DEFAULTS" 0644 root:root <<DEFAULTS
# ${MARK}: rewritten on install, upgrade and reconfigure.
# The file Debian shipped is kept as prometheus.debian.
ARGS="--config.file=${PROM_CONFIG} --web.config.file=${WEB_CONFIG} --web.listen-address=0.0.0.0:${PROM_PORT} --storage.tsdb.path=${TSDB_DIR}/ --storage.tsdb.retention.time=${PROM_RETENTION}"
DEFAULTS
    write_file "$NODE_DEFAULTS" 0644 root:root <<DEFAULTS
# ${MARK}: rewritten on install, upgrade and reconfigure.
# The file Debian shipped is kept as prometheus-node-exporter.debian.
ARGS="--web.listen-address=${listen}:${NODE_PORT}"
DEFAULTS
    log "Prometheus listens on 0.0.0.0:${PROM_PORT}, keeps ${PROM_RETENTION}; node exporter on ${listen}:${NODE_PORT}"
}

write_prometheus_config() {
    keep_debian_copy "$PROM_CONFIG"
    write_file "$PROM_CONFIG" 0644 root:root <<CONFIG
# ${MARK}: rewritten on install, upgrade and reconfigure.
# The file Debian shipped is kept as prometheus.yml.debian. Add your own scrape jobs in
# /etc/prometheus/targets.d/*.yml (file service discovery, see the README); they survive rewrites.

global:
  scrape_interval: ${PROM_SCRAPE_INTERVAL}
  evaluation_interval: ${PROM_SCRAPE_INTERVAL}

scrape_configs:
  - job_name: prometheus
    basic_auth:
      username: '${SCRAPE_USER}'
      password_file: ${SCRAPE_SECRET}
    static_configs:
      - targets: ['127.0.0.1:${PROM_PORT}']

  - job_name: node
    static_configs:
      - targets: ['127.0.0.1:${NODE_PORT}']

  - job_name: extra
    file_sd_configs:
      - files: ['/etc/prometheus/targets.d/*.yml']
CONFIG
    install -d -m 0755 /etc/prometheus/targets.d
    local out
    out=$(promtool check config --syntax-only "$PROM_CONFIG" 2>&1) || die "promtool rejected $PROM_CONFIG: $out"
}

# Prints the bcrypt hash (cost 10) of the password on stdin for the user in $1; the password
# reaches htpasswd on stdin only, never on a command line.
bcrypt_hash() {
    local line hash
    line=$(htpasswd -inB -C 10 "$1" 2>/dev/null) || die "htpasswd could not hash the password of '$1'"
    hash=${line#*:}
    [[ $hash == \$2* ]] || die "htpasswd did not return a bcrypt hash for '$1'"
    printf '%s' "$hash"
}

# The web config holds bcrypt hashes only: the user's login and the internal scrape account.
# The scrape account gets a new random password each time (install, upgrade, reconfigure), which
# also replaces the plain copy of the user's password that earlier versions kept in SCRAPE_SECRET.
write_credentials() {
    local hash scrape_secret scrape_hash out
    hash=$(printf '%s\n' "$PROM_PASSWORD" | bcrypt_hash "$PROM_USER")
    scrape_secret=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')
    [[ $scrape_secret =~ ^[0-9a-f]{48}$ ]] || die "could not generate the scrape password"
    scrape_hash=$(printf '%s\n' "$scrape_secret" | bcrypt_hash "$SCRAPE_USER")
    printf '%s' "$scrape_secret" | write_file "$SCRAPE_SECRET" 0640 root:prometheus
    write_file "$WEB_CONFIG" 0640 root:prometheus <<CONFIG
# ${MARK}: rewritten on install, upgrade and reconfigure.
# HTTP basic auth for the web UI and the API; passwords are stored as bcrypt hashes only.
# ${SCRAPE_USER} is Prometheus' own account for scraping itself (password in ${SCRAPE_SECRET}).
basic_auth_users:
  '${PROM_USER}': '${hash}'
  '${SCRAPE_USER}': '${scrape_hash}'
CONFIG
    out=$(promtool check web-config "$WEB_CONFIG" 2>&1) || die "promtool rejected $WEB_CONFIG: $out"
    log "Wrote the bcrypt hashes for '${PROM_USER}' and the internal '${SCRAPE_USER}' to $WEB_CONFIG"
}

restart_services() {
    systemctl daemon-reload
    systemctl enable --quiet prometheus prometheus-node-exporter
    systemctl restart prometheus-node-exporter
    systemctl restart prometheus
}

# A private curl config that carries the basic-auth header, so the password never shows on a
# command line. Prints its path; the caller removes it.
auth_file() {
    local file
    file=$(mktemp)
    chmod 0600 "$file"
    printf 'header = "Authorization: Basic %s"\n' \
        "$(printf '%s:%s' "$PROM_USER" "$PROM_PASSWORD" | base64 -w0)" >"$file"
    printf '%s' "$file"
}

# Waits until Prometheus is ready (/-/ready answers 200 with the login).
wait_for_prometheus() {
    local auth code i
    log "Waiting for Prometheus on port ${PROM_PORT}"
    auth=$(auth_file)
    for i in $(seq 1 60); do
        code=$(curl -sS --max-time 3 -K "$auth" -o /dev/null -w '%{http_code}' \
            "http://127.0.0.1:${PROM_PORT}/-/ready" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            rm -f "$auth"
            log "Prometheus is ready (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    rm -f "$auth"
    journalctl -u prometheus --no-pager -n 40 >&2 || true
    die "Prometheus did not become ready on port ${PROM_PORT} within 60 seconds (last HTTP ${code:-none})"
}

# Proves that the login works and that a request without it is refused, and that the node
# exporter serves metrics.
check_login() {
    local auth code anon i
    auth=$(auth_file)
    code=$(curl -sS --max-time 10 -K "$auth" -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${PROM_PORT}/api/v1/status/buildinfo" || true)
    rm -f "$auth"
    [[ $code == 200 ]] || die "login as '${PROM_USER}' failed (HTTP ${code:-none})"
    anon=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
        "http://127.0.0.1:${PROM_PORT}/api/v1/status/buildinfo" || true)
    [[ $anon == 401 ]] || die "Prometheus answers without a password (HTTP ${anon:-none})"
    log "Login as '${PROM_USER}' works; requests without it get 401"
    for i in $(seq 1 20); do
        if curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:${NODE_PORT}/metrics" 2>/dev/null; then
            log "The node exporter serves metrics on port ${NODE_PORT}"
            return 0
        fi
        sleep 1
    done
    journalctl -u prometheus-node-exporter --no-pager -n 40 >&2 || true
    die "the node exporter does not answer on port ${NODE_PORT}"
}

# Waits until Prometheus has scraped itself and the node exporter successfully (up == 1 for both
# jobs); the first scrape comes within one scrape interval.
check_targets() {
    local auth body i limit
    limit=$((${PROM_SCRAPE_INTERVAL%s} + 30))
    log "Waiting for the first scrapes of the prometheus and node jobs (up to ${limit}s)"
    auth=$(auth_file)
    for i in $(seq 1 "$limit"); do
        body=$(curl -sS --max-time 3 -K "$auth" -G \
            --data-urlencode 'query=count(up{job=~"prometheus|node"} == 1)' \
            "http://127.0.0.1:${PROM_PORT}/api/v1/query" 2>/dev/null || true)
        if [[ $body == *'"value":['*',"2"]'* ]]; then
            rm -f "$auth"
            log "Both targets are up (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    rm -f "$auth"
    die "Prometheus could not scrape itself and the node exporter (see Status -> Targets in the web UI)"
}
