#!/usr/bin/env bash
# Exits 0 when AdGuard Home answers a DNS query (any answer counts: the upstreams may be
# unreachable) and its web UI answers HTTP.
set -euo pipefail

dns_port=${AGH_DNS_PORT:-53}
dns_port=${dns_port%.0}
web_port=${AGH_WEB_PORT:-80}
web_port=${web_port%.0}
if ! dig +time=3 +tries=1 -p "$dns_port" @127.0.0.1 localhost A >/dev/null 2>&1; then
    echo "AdGuard Home does not answer DNS queries on port ${dns_port}" >&2
    exit 1
fi
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${web_port}/") || true
case $code in
    200 | 302) exit 0 ;;
    *)
        echo "AdGuard Home's web UI is not answering on port ${web_port} (HTTP ${code:-none})" >&2
        exit 1
        ;;
esac
