#!/usr/bin/env bash
# Installs AdGuard Home (pinned release from GitHub, checksum-verified) as a systemd service run
# by its own user, with the admin account written to AdGuardHome.yaml so no setup wizard is
# needed. Safe to run again; an existing configuration on the volume is kept and only gets the
# (possibly new) account, ports and upstreams.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AGH_USER AGH_PASSWORD AGH_WEB_PORT AGH_DNS_PORT AGH_UPSTREAMS

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
install_adguardhome
prepare_workdir
if systemctl is-active --quiet adguardhome; then systemctl stop adguardhome; fi
if [[ -f $AGH_CONFIG ]]; then
    log "Found an existing configuration in $AGH_CONFIG; applying the account, ports and upstreams to it"
else
    log "Writing a new configuration to $AGH_CONFIG"
fi
write_config
write_unit
check_dns_port_free

log "Enabling and starting adguardhome.service"
systemctl daemon-reload
systemctl enable --quiet adguardhome
systemctl restart adguardhome
wait_for_adguardhome
check_login
log "Done. Open http://<container-ip>:${AGH_WEB_PORT}/ and point your devices' DNS at the container."
