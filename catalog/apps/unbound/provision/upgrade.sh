#!/usr/bin/env bash
# Upgrades Unbound and the root trust data from the Debian archive and re-applies the configuration.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DNS_ALLOWED_NETWORKS DNS_PORT DNS_UPSTREAM DNS_IPV6 DNS_CACHE_MB

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' unbound 2>/dev/null || echo none)
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' unbound)
if [[ $before == "$after" ]]; then
    log "unbound is already the newest version (${after})"
else
    log "unbound upgraded from ${before} to ${after}"
fi

prepare_local_dir
write_config
systemctl restart unbound
wait_for_unbound
check_validation
log "Upgrade finished"
