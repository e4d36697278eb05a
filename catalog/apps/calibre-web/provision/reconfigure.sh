#!/usr/bin/env bash
# Applies changed settings: admin username and password, uploads, port. Calibre-Web reads its
# settings at start, so it is stopped, its settings database updated, and started again.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env CW_USER CW_PASSWORD CW_PORT CW_UPLOADS

[[ -f $APP_DB ]] || die "$APP_DB does not exist; reinstall the app"
apply_settings
start_service
check_login
log "Reconfiguration finished"
