#!/usr/bin/env bash
# Applies changed settings (allowed networks, port, upstream mode and servers, IPv6, cache size),
# restarts Unbound and checks that it answers.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DNS_ALLOWED_NETWORKS DNS_PORT DNS_UPSTREAM DNS_IPV6 DNS_CACHE_MB

prepare_local_dir
write_config
# A port or interface change needs a restart (the cache starts empty again).
systemctl restart unbound
wait_for_unbound
check_validation
log "Reconfiguration finished"
