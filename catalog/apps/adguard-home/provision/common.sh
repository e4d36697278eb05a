#!/usr/bin/env bash
# Shared helpers for the adguard-home scripts. Sourced, not run. Settings come only from the
# environment that app.yml declares. AdGuard Home comes from its GitHub release (pinned version),
# checked against the SHA-256 pinned here and the checksums.txt published with the release.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The pinned release; raise both (and the catalog version) to upgrade.
AGH_VERSION=v0.107.79
AGH_SHA256=c48f4a43000665484c5ec28177de11a004759b620dae8f77b2aabefc9ef3687f
AGH_ASSET=AdGuardHome_linux_amd64.tar.gz
AGH_URL=https://github.com/AdguardTeam/AdGuardHome/releases/download/$AGH_VERSION
AGH_DIR=/opt/adguardhome
AGH_BIN=$AGH_DIR/AdGuardHome
AGH_WORK=/var/lib/adguardhome
AGH_CONFIG=$AGH_WORK/AdGuardHome.yaml
UNIT=/etc/systemd/system/adguardhome.service
PROVISION_DIR=$(dirname "${BASH_SOURCE[0]}")
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(ca-certificates curl python3 python3-yaml python3-bcrypt bind9-dnsutils)

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

# Number inputs may arrive as "53" or "53.0".
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
    if [[ -n ${AGH_USER:-} && ! $AGH_USER =~ ^[a-z][a-z0-9._-]{0,31}$ ]]; then
        die "AGH_USER must match ^[a-z][a-z0-9._-]{0,31}\$"
    fi
    if [[ -n ${AGH_PASSWORD:-} ]]; then
        ((${#AGH_PASSWORD} >= 8)) || die "AGH_PASSWORD must be at least 8 characters"
        [[ $AGH_PASSWORD != *$'\n'* ]] || die "AGH_PASSWORD must be a single line"
    fi
    if [[ -n ${AGH_WEB_PORT:-} ]]; then AGH_WEB_PORT=$(normalize_port "$AGH_WEB_PORT"); fi
    if [[ -n ${AGH_DNS_PORT:-} ]]; then AGH_DNS_PORT=$(normalize_port "$AGH_DNS_PORT"); fi
    if [[ -n ${AGH_WEB_PORT:-} && ${AGH_WEB_PORT:-} == "${AGH_DNS_PORT:-}" ]]; then
        die "the web port and the DNS port must differ"
    fi
    if [[ -n ${AGH_UPSTREAMS:-} && ! $AGH_UPSTREAMS =~ ^[][A-Za-z0-9.:/@#_,+\ -]{1,1000}$ ]]; then
        die "AGH_UPSTREAMS holds characters an upstream address cannot contain"
    fi
    return 0
}

ensure_user() {
    if ! id -u adguardhome >/dev/null 2>&1; then
        getent group adguardhome >/dev/null || groupadd --system adguardhome
        useradd --system --gid adguardhome --home-dir "$AGH_WORK" --no-create-home \
            --shell /usr/sbin/nologin adguardhome
    fi
}

# The binary of the pinned release, checked against the pinned SHA-256 and, when the release's
# checksums.txt can be fetched, against that file too.
install_adguardhome() {
    local dir published marker=$AGH_DIR/.appstore-version
    if [[ -x $AGH_BIN && -f $marker && $(cat "$marker") == "$AGH_VERSION" ]]; then
        log "AdGuard Home $AGH_VERSION is already installed"
        return 0
    fi
    [[ $(uname -m) == x86_64 ]] || die "this entry installs the x86_64 build of AdGuard Home"
    dir=$(mktemp -d)
    log "Downloading $AGH_URL/$AGH_ASSET"
    curl -fsSL --retry 3 -o "$dir/$AGH_ASSET" "$AGH_URL/$AGH_ASSET" || die "could not download $AGH_URL/$AGH_ASSET"
    printf '%s  %s\n' "$AGH_SHA256" "$dir/$AGH_ASSET" | sha256sum -c --quiet - ||
        die "$AGH_ASSET does not match the pinned SHA-256 $AGH_SHA256"
    if curl -fsSL --retry 3 -o "$dir/checksums.txt" "$AGH_URL/checksums.txt" 2>/dev/null; then
        published=$(awk -v f="$AGH_ASSET" '$2 == f || $2 == "./" f { print $1; exit }' "$dir/checksums.txt")
        [[ $published == "$AGH_SHA256" ]] ||
            die "the release's checksums.txt lists ${published:-no SHA-256} for $AGH_ASSET, not $AGH_SHA256"
        log "SHA-256 matches the pin and the release's checksums.txt"
    else
        log "SHA-256 matches the pin (the release's checksums.txt could not be fetched)"
    fi
    tar -xzf "$dir/$AGH_ASSET" -C "$dir"
    [[ -x $dir/AdGuardHome/AdGuardHome ]] || die "the archive did not contain AdGuardHome/AdGuardHome"
    if systemctl is-active --quiet adguardhome 2>/dev/null; then systemctl stop adguardhome; fi
    install -d -m 0755 "$AGH_DIR"
    install -m 0755 "$dir/AdGuardHome/AdGuardHome" "$AGH_BIN"
    printf '%s\n' "$AGH_VERSION" >"$marker"
    rm -rf "$dir"
    log "Installed $("$AGH_BIN" --version 2>/dev/null || echo "AdGuard Home $AGH_VERSION")"
}

# The work directory (config and data/) is the volume; it may come from an earlier container
# whose adguardhome user had another uid.
prepare_workdir() {
    install -d -m 0750 "$AGH_WORK"
    chown -R adguardhome:adguardhome "$AGH_WORK"
}

write_unit() {
    cat >"$UNIT" <<UNIT
# Managed by PVE App Store (app adguard-home): rewritten on install and upgrade.
[Unit]
Description=AdGuard Home DNS server
After=network-online.target
Wants=network-online.target

[Service]
User=adguardhome
Group=adguardhome
ExecStart=${AGH_BIN} --no-check-update -c ${AGH_CONFIG} -w ${AGH_WORK}
# Port 53 (and a web port below 1024) without root; raw sockets for AdGuard Home's DHCP and ARP.
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
}

# Writes the web address, the admin account, the DNS port and the upstreams into
# AdGuardHome.yaml (created when missing, so the setup wizard is skipped); every other setting is
# kept. The password reaches the helper on standard input only. AdGuard Home must be stopped.
write_config() {
    printf '%s' "$AGH_PASSWORD" |
        AGH_USER=$AGH_USER AGH_WEB_PORT=$AGH_WEB_PORT AGH_DNS_PORT=$AGH_DNS_PORT \
            AGH_UPSTREAMS=$AGH_UPSTREAMS python3 "$PROVISION_DIR/agh_config.py" "$AGH_CONFIG"
    chown adguardhome:adguardhome "$AGH_CONFIG"
    chmod 0600 "$AGH_CONFIG"
}

# Something else on the DNS port would keep AdGuard Home from starting.
check_dns_port_free() {
    local holders
    holders=$(ss -Hlnup "sport = :$AGH_DNS_PORT" 2>/dev/null | grep -v AdGuardHome || true)
    [[ -z $holders ]] || die "port $AGH_DNS_PORT/udp is already in use in this container: $holders"
}

wait_for_adguardhome() {
    local code
    log "Waiting for AdGuard Home (web UI on port $AGH_WEB_PORT, DNS on port $AGH_DNS_PORT)"
    for _ in $(seq 1 60); do
        code=$(curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AGH_WEB_PORT/" 2>/dev/null || true)
        if [[ $code == 200 || $code == 302 ]] &&
            dig +time=2 +tries=1 -p "$AGH_DNS_PORT" @127.0.0.1 localhost A >/dev/null 2>&1; then
            log "AdGuard Home answers HTTP and DNS"
            return 0
        fi
        sleep 1
    done
    journalctl -u adguardhome --no-pager -n 40 >&2 || true
    die "AdGuard Home did not answer within 60 seconds"
}

# Logs in through the API; proves that the account works. The credentials travel as a JSON body
# on curl's standard input.
check_login() {
    local code
    code=$(printf '%s' "$AGH_PASSWORD" |
        AGH_USER=$AGH_USER python3 -c 'import json, os, sys; print(json.dumps({"name": os.environ["AGH_USER"], "password": sys.stdin.read()}))' |
        curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary @- "http://127.0.0.1:$AGH_WEB_PORT/control/login" || true)
    [[ $code == 200 ]] || die "login as '$AGH_USER' failed (HTTP ${code:-none})"
    log "Login as '$AGH_USER' works"
}
