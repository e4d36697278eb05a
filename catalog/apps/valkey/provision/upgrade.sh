#!/usr/bin/env bash
# Upgrades Valkey from the Debian archive and re-applies the configuration. The data is left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env VALKEY_PASSWORD VALKEY_PORT VALKEY_MAXMEMORY_MB VALKEY_MAXMEMORY_POLICY VALKEY_APPENDONLY

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' valkey-server 2>/dev/null || echo none)
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' valkey-server)
if [[ $before == "$after" ]]; then
    log "valkey-server is already the newest version (${after})"
else
    log "valkey-server upgraded from ${before} to ${after}"
fi

apply_and_start
log "Upgrade finished"
