#!/usr/bin/env bash
# Upgrades Node.js, npm and the build tools from the Debian archive and the sync server to the version
# this catalog entry pins, then writes the configuration and the unit again. Budgets, the account
# database (with the password) and the certificate are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AB_HTTPS AB_PORT

before=$(installed_version)
install_packages
install_server
if [[ $before == "$SERVER_VERSION" ]]; then
    log "The sync server is already at ${SERVER_VERSION}"
else
    log "The sync server moved from ${before} to ${SERVER_VERSION}"
fi
ensure_user
prepare_data
write_config
write_unit
systemctl enable --quiet "$SERVICE"
# The server runs its database migrations when it starts.
systemctl restart "$SERVICE"
wait_for_server
log "Upgrade finished"
