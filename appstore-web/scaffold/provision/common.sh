#!/usr/bin/env bash
# Shared helpers for the @ID@ scripts. Sourced, not run. Settings come only from the environment
# that app.yml declares.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

DATA_DIR=/var/lib/@ID@
# The example serves a page with nginx from Debian's archive: replace it with the app's packages.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(nginx curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8080" or "8080.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

# The app's configuration from the inputs; safe to write again.
write_config() {
    local port
    port=$(normalize_port "${APP_PORT:?APP_PORT is not set}")
    install -d -m 0755 "$DATA_DIR"
    [[ -e $DATA_DIR/index.html ]] || printf '<!doctype html><title>@NAME@</title><h1>@NAME@</h1>\n' >"$DATA_DIR/index.html"
    cat >/etc/nginx/sites-available/@ID@ <<CONF
server {
    listen ${port} default_server;
    root ${DATA_DIR};
}
CONF
    ln -sf /etc/nginx/sites-available/@ID@ /etc/nginx/sites-enabled/@ID@
    rm -f /etc/nginx/sites-enabled/default
    nginx -t -q
}
