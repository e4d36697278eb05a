#!/usr/bin/env bash
# Installs Valkey from Debian 13's archive (no other repository) with a password, listening on the
# network. Safe to run again, and on a data volume from an earlier install: its data is loaded and
# the (new) password applies.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env VALKEY_PASSWORD VALKEY_PORT VALKEY_MAXMEMORY_MB VALKEY_MAXMEMORY_POLICY VALKEY_APPENDONLY

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='valkey-server ${Version}' valkey-server)"

apply_and_start
log "Keys in the data set: $(vcli DBSIZE)"
log "Done. Connect to redis://<container-ip>:${VALKEY_PORT} with the password."
