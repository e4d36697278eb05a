#!/usr/bin/env bash
# Installs Unbound from Debian 13's archive (no other repository) as a validating, caching resolver
# for the allowed networks. Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DNS_ALLOWED_NETWORKS DNS_PORT DNS_UPSTREAM DNS_IPV6 DNS_CACHE_MB

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='unbound ${Version}' unbound)"

prepare_local_dir
write_config

log "Enabling and starting unbound.service"
systemctl enable --quiet unbound
systemctl restart unbound
wait_for_unbound
check_validation
log "Done. Give your clients (or your router's DHCP) the container's address as DNS server."
