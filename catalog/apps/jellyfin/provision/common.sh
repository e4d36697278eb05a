#!/usr/bin/env bash
# Shared helpers for the jellyfin scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

JELLYFIN_DATA=/var/lib/jellyfin
JELLYFIN_SYSTEM_XML=/etc/jellyfin/system.xml
KEYRING=/etc/apt/keyrings/jellyfin.asc
SOURCES=/etc/apt/sources.list.d/jellyfin.sources

PROVISION_DIR=$(dirname "${BASH_SOURCE[0]}")
GPU_DROPIN=/etc/systemd/system/jellyfin.service.d/appstore-gpu.conf

HWACCEL=${HWACCEL:-auto}

# Installs made by version 1.0.0 of this entry recorded nothing; their GPU is recognised by its
# device nodes (and, for render nodes, the PCI vendor id in sysfs).
detect_gpu_vendor() {
    local d id
    for d in /dev/nvidia[0-9]*; do
        if [[ -c $d ]]; then
            printf 'nvidia'
            return 0
        fi
    done
    for d in /dev/dri/renderD*; do
        [[ -c $d ]] || continue
        id=$(cat "/sys/class/drm/${d##*/}/device/vendor" 2>/dev/null || true)
        case $id in
            0x8086) printf 'intel' && return 0 ;;
            0x1002) printf 'amd' && return 0 ;;
        esac
    done
    return 0
}

# The store passes the attached GPU as APPSTORE_GPU_VENDOR. Jobs that run later (upgrade,
# reconfigure) may not get it: then the vendor gpu.sh configure recorded is used.
GPU_VENDOR=${APPSTORE_GPU_VENDOR:-}
if [[ -z $GPU_VENDOR && -f $GPU_DROPIN ]]; then
    GPU_VENDOR=$(sed -n 's/^Environment="APPSTORE_GPU_VENDOR=\([a-z]*\)"$/\1/p' "$GPU_DROPIN" | head -n 1)
fi
if [[ -z $GPU_VENDOR ]]; then
    GPU_VENDOR=$(detect_gpu_vendor)
fi

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

check_env() {
    case $HWACCEL in
        auto | none) ;;
        *) die "HWACCEL must be 'auto' or 'none', not '$HWACCEL'" ;;
    esac
    case $GPU_VENDOR in
        "" | intel | amd | nvidia) ;;
        *) die "unknown GPU vendor '$GPU_VENDOR'" ;;
    esac
    if [[ -n ${JELLYFIN_SERVER_NAME:-} && ! $JELLYFIN_SERVER_NAME =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]{0,63}$ ]]; then
        die "JELLYFIN_SERVER_NAME may only contain letters, digits, spaces, '.', '_' and '-'"
    fi
    return 0
}

add_jellyfin_repository() {
    local codename arch
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-trixie}")
    arch=$(dpkg --print-architecture)
    log "Adding the Jellyfin repository (debian ${codename}, ${arch})"
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL --retry 3 https://repo.jellyfin.org/jellyfin_team.gpg.key -o "$KEYRING.tmp"
    grep -q 'BEGIN PGP PUBLIC KEY BLOCK' "$KEYRING.tmp" || die "the Jellyfin signing key download is not a PGP key"
    chmod 0644 "$KEYRING.tmp"
    mv -f "$KEYRING.tmp" "$KEYRING"
    cat >"$SOURCES" <<SOURCES
Types: deb
URIs: https://repo.jellyfin.org/debian
Suites: ${codename}
Components: main
Architectures: ${arch}
Signed-By: ${KEYRING}
SOURCES
}

# The data volume may come from an earlier container whose jellyfin user had another uid.
fix_data_ownership() {
    install -d -m 0750 "$JELLYFIN_DATA"
    chown -R "jellyfin:$(id -gn jellyfin)" "$JELLYFIN_DATA"
}

# render owns /dev/dri/renderD* (the store maps the node to this group); video is the traditional
# group for video devices.
add_device_groups() {
    getent group render >/dev/null || groupadd --system render
    getent group video >/dev/null || groupadd --system video
    usermod -a -G render,video jellyfin
    log "jellyfin is in the groups: $(id -nG jellyfin)"
}

# Runs gpu.sh when a GPU is attached and GPU drivers are "auto": userland, configure, then check
# (a failed check is reported but does not fail the install: Jellyfin still works in software).
setup_gpu() {
    local gpu=$PROVISION_DIR/gpu.sh
    if [[ $HWACCEL == none ]]; then
        log "GPU drivers: skipped (hardware acceleration set to 'none')"
        return 0
    fi
    if [[ -z $GPU_VENDOR ]]; then
        log "No GPU attached: Jellyfin will transcode in software"
        return 0
    fi
    APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" userland
    APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" configure
    if ! APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" check; then
        warn "the GPU check failed (see above); Jellyfin falls back to software transcoding"
    fi
}

wait_for_jellyfin() {
    local i
    log "Waiting for Jellyfin on port 8096 (the first start can take a minute)"
    for i in $(seq 1 120); do
        if curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:8096/health 2>/dev/null; then
            log "Jellyfin is healthy"
            return 0
        fi
        if ((i % 15 == 0)); then
            log "still waiting ($((i * 2))s)"
        fi
        sleep 2
    done
    journalctl -u jellyfin --no-pager -n 40 >&2 || true
    die "Jellyfin did not become healthy within 240 seconds"
}

# Sets <ServerName> in system.xml, which Jellyfin writes on its first start. Jellyfin must be stopped
# while the file changes, or it would write its own copy back.
set_server_name() {
    local name=${JELLYFIN_SERVER_NAME:-} i owner mode
    [[ -n $name ]] || return 0
    for i in $(seq 1 30); do
        [[ -s $JELLYFIN_SYSTEM_XML ]] && break
        sleep 1
    done
    if [[ ! -s $JELLYFIN_SYSTEM_XML ]]; then
        warn "$JELLYFIN_SYSTEM_XML does not exist; set the server name in the dashboard instead"
        return 0
    fi
    if grep -qF "<ServerName>${name}</ServerName>" "$JELLYFIN_SYSTEM_XML"; then
        log "Server name is already '${name}'"
        return 0
    fi
    log "Setting the server name to '${name}'"
    owner=$(stat -c '%u:%g' "$JELLYFIN_SYSTEM_XML")
    mode=$(stat -c '%a' "$JELLYFIN_SYSTEM_XML")
    systemctl stop jellyfin
    # The name is limited to letters, digits, spaces and ._- so it needs no XML escaping.
    SERVER_NAME=$name perl -0777 -pi -e '
        s{<ServerName\s*/>|<ServerName>.*?</ServerName>}{<ServerName>$ENV{SERVER_NAME}</ServerName>}s
            or s{</ServerConfiguration>}{  <ServerName>$ENV{SERVER_NAME}</ServerName>\n</ServerConfiguration>}
    ' "$JELLYFIN_SYSTEM_XML"
    chown "$owner" "$JELLYFIN_SYSTEM_XML"
    chmod "$mode" "$JELLYFIN_SYSTEM_XML"
    systemctl start jellyfin
    wait_for_jellyfin
}
