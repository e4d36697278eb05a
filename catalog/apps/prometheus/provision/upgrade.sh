#!/usr/bin/env bash
# Upgrades Prometheus and the node exporter from the Debian archive and re-applies the
# configuration; the store took a snapshot first and rolls back when this or the health check fails.
# The metrics in the TSDB are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env PROM_USER PROM_PASSWORD PROM_PORT PROM_RETENTION PROM_SCRAPE_INTERVAL NODE_EXPORTER_PUBLIC

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' prometheus 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' prometheus)
if [[ $before == "$after" ]]; then
    log "prometheus is already the newest version (${after})"
else
    log "prometheus upgraded from ${before} to ${after}"
fi

prepare_storage
write_defaults
write_credentials
write_prometheus_config
restart_services
wait_for_prometheus
check_login
log "Upgrade finished"
