#!/usr/bin/env bash
# Installs Forgejo (pinned release binary from codeberg.org, checked against its published
# .sha256) with SQLite, its built-in SSH server and an admin account, without the web installer.
# Safe to run again; a data volume from an earlier install is kept and gets the (possibly new)
# admin password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env FJ_ADMIN_USER FJ_ADMIN_PASSWORD FJ_ADMIN_EMAIL FJ_HTTP_PORT FJ_SSH_PORT FJ_ROOT_URL

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
install_forgejo
prepare_workdir
if systemctl is-active --quiet forgejo; then systemctl stop forgejo; fi
write_config
log "Preparing the database (forgejo migrate)"
fj_cfg migrate >/dev/null
ensure_admin
write_unit

log "Enabling and starting forgejo.service"
systemctl daemon-reload
systemctl enable --quiet forgejo
systemctl restart forgejo
wait_for_forgejo
set_admin_password
check_login
log "Done. Open ${FJ_ROOT_URL} and log in as '${FJ_ADMIN_USER}'; clone over SSH on port ${FJ_SSH_PORT}."
