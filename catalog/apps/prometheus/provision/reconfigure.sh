#!/usr/bin/env bash
# Applies changed settings: login, scrape interval, retention, node exporter address and port.
# Rewrites the configuration, restarts both services and checks the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env PROM_USER PROM_PASSWORD PROM_PORT PROM_RETENTION PROM_SCRAPE_INTERVAL NODE_EXPORTER_PUBLIC

prepare_storage
write_defaults
write_credentials
write_prometheus_config
restart_services
wait_for_prometheus
check_login
log "Reconfiguration finished"
