#!/usr/bin/env bash
# Upgrades @NAME@ to the packages of this catalog version; the store took a snapshot first and
# rolls back when this script or the health check fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log "Upgrading ${PACKAGES[*]}"
apt-get update -q
apt_install --only-upgrade "${PACKAGES[@]}"
write_config
systemctl restart nginx
log "Done"
