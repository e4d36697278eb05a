#!/usr/bin/env bash
# Upgrades the couchdb package only and re-applies this app's LiveSync settings. Credentials and
# databases are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env COUCHDB_PORT

log "Refreshing package lists"
apt-get update -q
# Containers of earlier versions trusted the whole key file; re-check it against the pinned
# fingerprint (gpg is needed for that).
apt-get install -y -q --no-install-recommends curl ca-certificates gpg
add_couchdb_repository
apt-get update -q
before=$(dpkg-query -W -f='${Version}' couchdb 2>/dev/null || echo none)
log "Upgrading couchdb (installed: ${before})"
apt-get install -y -q --only-upgrade --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold couchdb
after=$(dpkg-query -W -f='${Version}' couchdb)
protect_debconf_cache
if [[ $before == "$after" ]]; then
    log "couchdb is already the newest version (${after})"
else
    log "couchdb upgraded from ${before} to ${after}"
fi

write_systemd_dropin
write_livesync_ini
fix_ownership
systemctl daemon-reload
log "Restarting CouchDB"
systemctl restart couchdb
wait_for_couchdb
log "Upgrade finished"
