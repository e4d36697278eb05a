#!/usr/bin/env bash
# Installs Prometheus and the node exporter from Debian 13's archive (no other repository), with
# HTTP basic auth (a bcrypt hash in a web config file) on the web UI and the API.
# Safe to run again: every step overwrites its own result; an existing TSDB is kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env PROM_USER PROM_PASSWORD PROM_PORT PROM_RETENTION PROM_SCRAPE_INTERVAL NODE_EXPORTER_PUBLIC

if [[ -d $TSDB_DIR ]] && [[ -n $(ls -A "$TSDB_DIR" 2>/dev/null) ]]; then
    log "Found metrics from an earlier install in $TSDB_DIR; they are kept"
fi

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='prometheus ${Version}, ' prometheus)$(dpkg-query -W -f='prometheus-node-exporter ${Version}' prometheus-node-exporter)"

prepare_storage
write_defaults
write_credentials
write_prometheus_config

log "Enabling and starting prometheus and prometheus-node-exporter"
restart_services
wait_for_prometheus
check_login
check_targets
log "Done. Open http://<container-ip>:${PROM_PORT}/ and log in as '${PROM_USER}'."
