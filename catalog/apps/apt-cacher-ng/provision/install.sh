#!/usr/bin/env bash
# Installs apt-cacher-ng from Debian's archive, listening on the chosen port.
# Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env ACNG_PORT ACNG_ADMIN_PASSWORD

ensure_user
prepare_cache
log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='apt-cacher-ng ${Version}' apt-cacher-ng)"

write_config
write_admin

log "Enabling and starting apt-cacher-ng.service"
systemctl enable --quiet apt-cacher-ng
systemctl restart apt-cacher-ng
wait_for_acng
log "Done. On your clients: echo 'Acquire::http::Proxy \"http://<container-ip>:${ACNG_PORT}\";' > /etc/apt/apt.conf.d/01proxy"
