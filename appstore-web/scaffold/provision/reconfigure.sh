#!/usr/bin/env bash
# Applies changed settings (the inputs marked reconfigurable in app.yml).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log "Writing the configuration"
write_config
systemctl reload-or-restart nginx
log "Done"
