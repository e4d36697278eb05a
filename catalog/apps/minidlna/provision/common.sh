#!/usr/bin/env bash
# Shared helpers for the minidlna scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

DLNA_CONF=/etc/minidlna.conf
DLNA_ACCOUNT=minidlna
# Debian's default media directory; the media volume is mounted here.
MEDIA_DIR=/var/lib/minidlna
# The database is a cache that MiniDLNA rebuilds from the media; it stays on the root disk.
DB_DIR=/var/cache/minidlna
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(minidlna curl)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "8200" or "8200.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${DLNA_NAME:-} && ! $DLNA_NAME =~ ^[A-Za-z0-9][A-Za-z0-9\ ._\(\)-]{0,47}$ ]]; then
        die "DLNA_NAME must be 1-48 letters, digits, spaces or . _ ( ) -"
    fi
    case ${DLNA_ROOT:-standard} in
        standard | folders) ;;
        *) die "DLNA_ROOT must be standard or folders" ;;
    esac
    case ${DLNA_INOTIFY:-true} in
        true | false) ;;
        *) die "DLNA_INOTIFY must be true or false" ;;
    esac
    [[ -z ${DLNA_PORT:-} ]] || DLNA_PORT=$(normalize_port "$DLNA_PORT")
    return 0
}

# The volume may hold media of an earlier container whose minidlna user had another uid.
prepare_media() {
    local sub
    install -d -m 0755 "$MEDIA_DIR"
    for sub in Music Videos Pictures; do
        # Only on an empty volume or one we prepared before: never next to someone's own layout.
        if [[ ! -e $MEDIA_DIR/$sub ]]; then
            install -d -m 0775 "$MEDIA_DIR/$sub"
        fi
    done
    chown "$DLNA_ACCOUNT:$DLNA_ACCOUNT" "$MEDIA_DIR"
    find "$MEDIA_DIR" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R "$DLNA_ACCOUNT:$DLNA_ACCOUNT" {} +
    install -d -m 0750 -o "$DLNA_ACCOUNT" -g "$DLNA_ACCOUNT" "$DB_DIR"
}

write_config() {
    local tmp root inotify
    # Keep the file Debian shipped, once.
    if [[ -f $DLNA_CONF && ! -f $DLNA_CONF.debian ]] && ! grep -q 'Managed by PVE App Store' "$DLNA_CONF"; then
        cp -p "$DLNA_CONF" "$DLNA_CONF.debian"
    fi
    [[ $DLNA_ROOT == folders ]] && root=B || root=.
    [[ $DLNA_INOTIFY == true ]] && inotify=yes || inotify=no
    tmp=$(mktemp /etc/.minidlna.conf.XXXXXX)
    cat >"$tmp" <<CONF
# Managed by PVE App Store (app minidlna): rewritten on install, upgrade and reconfigure.
# The file Debian shipped is kept as minidlna.conf.debian. See minidlna.conf(5).

# Everything below the media volume, all media types.
media_dir=${MEDIA_DIR}

friendly_name=${DLNA_NAME}
port=${DLNA_PORT}
# Listen on every interface of the container.
#network_interface=

db_dir=${DB_DIR}
log_dir=/var/log/minidlna
log_level=general,artwork,database,inotify,scanner,metadata,http,ssdp,tivo=warn

# . = Music/Video/Pictures menus, B = browse the folders.
root_container=${root}
inotify=${inotify}
notify_interval=895
strict_dlna=no
enable_subtitles=yes

album_art_names=Cover.jpg/cover.jpg/AlbumArtSmall.jpg/albumartsmall.jpg
album_art_names=AlbumArt.jpg/albumart.jpg/Album.jpg/album.jpg
album_art_names=Folder.jpg/folder.jpg/Thumb.jpg/thumb.jpg
CONF
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DLNA_CONF"
    log "Wrote $DLNA_CONF ('${DLNA_NAME}' on port ${DLNA_PORT}, view ${DLNA_ROOT}, watching files: ${DLNA_INOTIFY})"
}

restart_minidlna() {
    log "Enabling and (re)starting minidlna.service"
    systemctl enable --quiet minidlna
    systemctl restart minidlna
}

wait_for_minidlna() {
    local page i
    log "Waiting for MiniDLNA's status page on port ${DLNA_PORT}"
    for i in $(seq 1 60); do
        page=$(curl -fsS --max-time 3 "http://127.0.0.1:${DLNA_PORT}/" 2>/dev/null || true)
        if [[ $page == *MiniDLNA* ]]; then
            log "MiniDLNA answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u minidlna --no-pager -n 40 >&2 || true
    tail -n 20 /var/log/minidlna/minidlna.log >&2 2>/dev/null || true
    die "MiniDLNA did not answer on port ${DLNA_PORT} within 60 seconds"
}

# The friendly name in the UPnP device description proves the new configuration is live.
check_description() {
    local desc
    desc=$(curl -fsS --max-time 5 "http://127.0.0.1:${DLNA_PORT}/rootDesc.xml" || true)
    [[ $desc == *"<friendlyName>${DLNA_NAME}"* ]] ||
        die "MiniDLNA's device description does not show the name '${DLNA_NAME}'"
    log "MiniDLNA announces itself as '${DLNA_NAME}'"
}
