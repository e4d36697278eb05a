#!/usr/bin/env bash
# Applies changed inputs (admin account, web port, upstream servers) to AdGuardHome.yaml, restarts
# AdGuard Home and checks that the login works.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AGH_USER AGH_PASSWORD AGH_WEB_PORT AGH_DNS_PORT AGH_UPSTREAMS

prepare_workdir
# AdGuard Home keeps its settings in memory and writes them back; it must not run meanwhile.
systemctl stop adguardhome
write_config
systemctl start adguardhome
wait_for_adguardhome
check_login
log "Reconfiguration finished"
