#!/usr/bin/env bash
# Upgrades Node.js, npm and node-pty from the Debian archive and Homebridge and the Homebridge UI to
# the versions this catalog entry pins, then writes the unit and the UI port again. Pairings,
# accessories, plugins and UI users are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env HB_PORT

hb_before=$(installed_version homebridge)
ui_before=$(installed_version homebridge-config-ui-x)
install_packages
install_homebridge
log "Homebridge ${hb_before} -> ${HOMEBRIDGE_VERSION}, Homebridge UI ${ui_before} -> ${UI_VERSION}"
ensure_user
prepare_storage
write_config
write_unit
systemctl enable --quiet "$SERVICE"
systemctl restart "$SERVICE"
wait_for_ui
log "Upgrade finished"
