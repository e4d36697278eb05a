#!/usr/bin/env bash
# Shared helpers for the unbound scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

APP_CONF=/etc/unbound/unbound.conf.d/appstore.conf
LOCAL_DIR=/etc/unbound/local.d
TRUST_ANCHOR=/var/lib/unbound/root.key
# dns-root-data: root hints and the root trust anchor (DNSSEC). bind9-dnsutils: dig, for the
# checks. ca-certificates: to verify DNS-over-TLS servers.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(unbound dns-root-data bind9-dnsutils ca-certificates)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "53" or "53.0".
normalize_number() {
    local raw=${1%.0}
    [[ $raw =~ ^[0-9]{1,6}$ ]] || die "invalid number '$1'"
    printf '%s' "$((10#$raw))"
}

# Splits the allowed networks on commas and spaces into NETWORKS and checks each CIDR.
parse_networks() {
    local item addr bits
    NETWORKS=()
    for item in ${DNS_ALLOWED_NETWORKS//,/ }; do
        [[ $item =~ ^([0-9A-Fa-f:.]+)/([0-9]{1,3})$ ]] || die "'$item' is not a network in CIDR form"
        addr=${BASH_REMATCH[1]}
        bits=$((10#${BASH_REMATCH[2]}))
        if [[ $addr == *:* ]]; then
            ((bits <= 128)) || die "'$item': an IPv6 prefix is at most 128"
        else
            [[ $addr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "'$item' is not an IPv4 network"
            ((bits <= 32)) || die "'$item': an IPv4 prefix is at most 32"
        fi
        NETWORKS+=("$addr/$bits")
    done
    ((${#NETWORKS[@]} > 0)) || die "DNS_ALLOWED_NETWORKS names no network"
}

# Splits the forwarders into FORWARDERS, in Unbound's addr[@port][#name] form; DNS over TLS gets
# port 853 where none is given.
parse_forwarders() {
    local item addr port name
    FORWARDERS=()
    for item in ${DNS_FORWARDERS//,/ }; do
        [[ $item =~ ^([0-9A-Fa-f:.]+)(@([0-9]{1,5}))?(#([A-Za-z0-9.-]+))?$ ]] ||
            die "'$item' is not an upstream server (address[@port][#name])"
        addr=${BASH_REMATCH[1]}
        port=${BASH_REMATCH[3]}
        name=${BASH_REMATCH[5]}
        if [[ $addr != *:* && ! $addr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
            die "'$item': '$addr' is not an IP address"
        fi
        if [[ -z $port && $DNS_UPSTREAM == forward-tls ]]; then
            port=853
        fi
        [[ -z $port ]] || ((10#$port >= 1 && 10#$port <= 65535)) || die "'$item': invalid port"
        if [[ $DNS_UPSTREAM == forward-tls && -z $name ]]; then
            log "Note: '$item' has no #name; its TLS certificate is used without a name check"
        fi
        FORWARDERS+=("${addr}${port:+@$((10#$port))}${name:+#$name}")
    done
    ((${#FORWARDERS[@]} > 0)) || die "DNS_FORWARDERS names no server"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${DNS_PORT:-} ]]; then
        DNS_PORT=$(normalize_number "$DNS_PORT")
        ((DNS_PORT >= 1 && DNS_PORT <= 65535)) || die "invalid port '${DNS_PORT}'"
    fi
    if [[ -n ${DNS_CACHE_MB:-} ]]; then
        DNS_CACHE_MB=$(normalize_number "$DNS_CACHE_MB")
        ((DNS_CACHE_MB >= 4)) || die "DNS_CACHE_MB must be at least 4"
    fi
    case ${DNS_UPSTREAM:-recursive} in
        recursive | forward-tls | forward) ;;
        *) die "unknown DNS_UPSTREAM '${DNS_UPSTREAM}'" ;;
    esac
    case ${DNS_IPV6:-false} in
        true | false) ;;
        *) die "DNS_IPV6 must be true or false" ;;
    esac
    [[ -z ${DNS_ALLOWED_NETWORKS:-} ]] || parse_networks
    if [[ ${DNS_UPSTREAM:-recursive} != recursive ]]; then
        [[ -n ${DNS_FORWARDERS:-} ]] || die "DNS_FORWARDERS is needed with DNS_UPSTREAM=${DNS_UPSTREAM}"
        parse_forwarders
    fi
    return 0
}

# The volume may be new (root-owned, with lost+found) or come from an earlier container. Unbound
# only reads it; root keeps owning it.
prepare_local_dir() {
    install -d -m 0755 "$LOCAL_DIR"
    if [[ ! -e $LOCAL_DIR/README ]]; then
        cat >"$LOCAL_DIR/README" <<'TXT'
Files named *.conf in this directory are included in Unbound's configuration (after the store's
own settings) and survive a reinstall that keeps volumes. Each file starts with a clause such as
"server:". Example, local-names.conf:

server:
    local-zone: "home.arpa." static
    local-data: "nas.home.arpa. IN A 192.168.1.10"
    local-data-ptr: "192.168.1.10 nas.home.arpa."

Check with unbound-checkconf, then apply with: systemctl restart unbound
TXT
    fi
    # Only root may change what the resolver loads.
    chown root:root "$LOCAL_DIR"
    find "$LOCAL_DIR" -maxdepth 1 -name '*.conf' -exec chown root:root {} + -exec chmod go-w {} +
}

write_config() {
    local tmp net fwd half
    half=$((DNS_CACHE_MB / 2))
    ((half >= 1)) || half=1
    tmp=$(mktemp /etc/unbound/unbound.conf.d/.appstore.XXXXXX)
    {
        printf '# Managed by PVE App Store (app unbound): rewritten on install, upgrade and reconfigure.\n'
        printf '# Put your own settings in %s/*.conf (included at the end).\n\n' "$LOCAL_DIR"
        printf 'server:\n'
        printf '    port: %s\n' "$DNS_PORT"
        printf '    interface: 0.0.0.0\n'
        if [[ $DNS_IPV6 == true ]]; then
            printf '    interface: ::0\n'
            printf '    do-ip6: yes\n'
        else
            printf '    do-ip6: no\n'
        fi
        printf '    do-ip4: yes\n    do-udp: yes\n    do-tcp: yes\n'
        printf '    num-threads: 1\n'
        printf '\n    # Who may ask: the container itself and the allowed networks; everyone else is refused.\n'
        printf '    access-control: 0.0.0.0/0 refuse\n'
        printf '    access-control: ::/0 refuse\n'
        printf '    access-control: 127.0.0.0/8 allow\n'
        printf '    access-control: ::1/128 allow\n'
        for net in "${NETWORKS[@]}"; do
            printf '    access-control: %s allow\n' "$net"
        done
        printf '\n    # DNSSEC validation uses the root trust anchor of root-auto-trust-anchor-file.conf.\n'
        printf '    harden-glue: yes\n'
        printf '    harden-dnssec-stripped: yes\n'
        printf '    harden-below-nxdomain: yes\n'
        printf '    qname-minimisation: yes\n'
        printf '    aggressive-nsec: yes\n'
        printf '    hide-identity: yes\n'
        printf '    hide-version: yes\n'
        printf '    use-caps-for-id: no\n'
        printf '\n    # Cache.\n'
        printf '    rrset-cache-size: %sm\n' "$DNS_CACHE_MB"
        printf '    msg-cache-size: %sm\n' "$half"
        printf '    prefetch: yes\n'
        printf '    prefetch-key: yes\n'
        printf '    serve-expired: yes\n'
        printf '    serve-expired-ttl: 86400\n'
        printf '    serve-expired-client-timeout: 1800\n'
        if [[ $DNS_UPSTREAM != recursive ]]; then
            printf '\n    # Certificates of DNS-over-TLS servers are checked against the system CAs.\n'
            printf '    tls-cert-bundle: /etc/ssl/certs/ca-certificates.crt\n'
            printf '\nforward-zone:\n'
            printf '    name: "."\n'
            if [[ $DNS_UPSTREAM == forward-tls ]]; then
                printf '    forward-tls-upstream: yes\n'
            fi
            for fwd in "${FORWARDERS[@]}"; do
                printf '    forward-addr: %s\n' "$fwd"
            done
        fi
        printf '\n# Your own files; each starts with a clause such as "server:".\n'
        printf 'include-toplevel: "%s/*.conf"\n' "$LOCAL_DIR"
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$APP_CONF"
    if ! unbound-checkconf >/dev/null; then
        unbound-checkconf >&2 || true
        die "unbound-checkconf rejects the configuration (is a file in ${LOCAL_DIR} broken?)"
    fi
    case $DNS_UPSTREAM in
        recursive) log "Wrote $APP_CONF (port ${DNS_PORT}, recursive, clients ${NETWORKS[*]})" ;;
        *) log "Wrote $APP_CONF (port ${DNS_PORT}, ${DNS_UPSTREAM} to ${FORWARDERS[*]}, clients ${NETWORKS[*]})" ;;
    esac
}

# One query for localhost. (answered from Unbound's built-in local zone, so it works without
# Internet access). Prints the answer; returns non-zero when there is none.
query_localhost() {
    local answer
    answer=$(dig @127.0.0.1 -p "$DNS_PORT" +time=2 +tries=1 +short localhost. A 2>&1) || true
    printf '%s' "$answer"
    [[ $answer == 127.0.0.1 ]]
}

wait_for_unbound() {
    local i
    log "Waiting for Unbound on port ${DNS_PORT}"
    for i in $(seq 1 30); do
        if query_localhost >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/${DNS_PORT}") 2>/dev/null; then
            log "Unbound answers DNS queries over UDP and accepts TCP (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u unbound --no-pager -n 30 >&2 || true
    die "Unbound did not answer on port ${DNS_PORT} within 30 seconds"
}

# Reports that DNSSEC validation is on: the validator module is loaded and the trust anchor exists.
check_validation() {
    local modules
    modules=$(unbound-checkconf -o module-config 2>/dev/null || true)
    [[ $modules == *validator* ]] || die "the validator module is not enabled (module-config: ${modules})"
    [[ -s $TRUST_ANCHOR ]] || die "the root trust anchor $TRUST_ANCHOR is missing"
    log "DNSSEC validation is on (module-config: ${modules}; trust anchor ${TRUST_ANCHOR})"
}
