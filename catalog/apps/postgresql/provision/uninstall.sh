#!/usr/bin/env bash
# Runs before the container is destroyed: shuts PostgreSQL down cleanly (a checkpoint, no crash
# recovery at the next start) so the data volume is consistent, and refreshes the copy of the
# cluster configuration on the volume for a later reinstall. Nothing is deleted here.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if systemctl is-active --quiet postgresql; then
    log "Stopping PostgreSQL"
    systemctl stop postgresql
    # postgresql.service only groups the clusters; make sure each one is down.
    systemctl stop 'postgresql@*' 2>/dev/null || true
else
    log "PostgreSQL is not running"
fi
save_config_copy
log "The databases in ${DATA_ROOT} were not touched; the configuration is saved in ${CONFIG_COPY}"
