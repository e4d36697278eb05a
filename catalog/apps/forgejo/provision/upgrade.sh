#!/usr/bin/env bash
# Moves Forgejo to the release this catalog entry pins (migrating the database first), re-applies
# the managed settings and restarts it. Repositories, database and settings are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env FJ_HTTP_PORT FJ_SSH_PORT FJ_ROOT_URL

apt-get update -q
apt_install "${PACKAGES[@]}"
before=$(cat /usr/local/lib/forgejo-appstore-version 2>/dev/null || echo none)
ensure_user
install_forgejo
prepare_workdir
systemctl stop forgejo
write_config
log "Migrating the database (forgejo migrate)"
fj_cfg migrate >/dev/null
write_unit
systemctl daemon-reload
systemctl start forgejo
wait_for_forgejo
if [[ $before == "$FORGEJO_VERSION" ]]; then
    log "Forgejo is already at the pinned version ($FORGEJO_VERSION)"
else
    log "Forgejo upgraded from $before to $FORGEJO_VERSION"
fi
log "Upgrade finished"
