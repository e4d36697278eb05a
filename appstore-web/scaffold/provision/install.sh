#!/usr/bin/env bash
# Installs @NAME@. Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
write_config
log "Enabling and starting nginx"
systemctl enable --quiet nginx
systemctl restart nginx
log "Done"
