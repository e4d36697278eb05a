#!/usr/bin/env bash
# Sets a new maintenance password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env ACNG_PORT ACNG_ADMIN_PASSWORD

write_admin
systemctl restart apt-cacher-ng
wait_for_acng
log "Maintenance password changed"
