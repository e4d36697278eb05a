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

HWACCEL=${HWACCEL:-auto}
GPU_VENDOR=${GPU_VENDOR:-}
NVIDIA_DRIVER_VERSION=${NVIDIA_DRIVER_VERSION:-}

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
        *) die "unknown GPU_VENDOR '$GPU_VENDOR'" ;;
    esac
    if [[ -n ${JELLYFIN_SERVER_NAME:-} && ! $JELLYFIN_SERVER_NAME =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]{0,63}$ ]]; then
        die "JELLYFIN_SERVER_NAME may only contain letters, digits, spaces, '.', '_' and '-'"
    fi
    return 0
}

add_jellyfin_repository() {
    local codename arch
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-bookworm}")
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

install_vaapi_drivers() {
    case $GPU_VENDOR in
        intel)
            # Debian main only; the -non-free Intel driver would need the non-free component.
            # jellyfin-ffmpeg also carries its own Intel media driver; these serve vainfo and fallbacks.
            log "Installing Intel VA-API and OpenCL drivers from Debian main"
            apt_install intel-media-va-driver i965-va-driver intel-opencl-icd vainfo
            ;;
        amd)
            log "Installing the Mesa VA-API driver for AMD from Debian main"
            apt_install mesa-va-drivers vainfo
            ;;
    esac
}

# NVIDIA needs userland libraries (libcuda, libnvidia-encode, libnvcuvid, nvidia-smi) of exactly the
# host driver's version; the kernel module is the host's. The store passes that version.
install_nvidia_userland() {
    local ver=$NVIDIA_DRIVER_VERSION run url
    if [[ -z $ver ]]; then
        warn "an NVIDIA GPU is attached but the store passed no host driver version; skipping the userland"
        warn "install NVIDIA-Linux-x86_64-<host version>.run with --no-kernel-module yourself"
        return 0
    fi
    [[ $ver =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "unexpected NVIDIA driver version '$ver'"
    [[ $(uname -m) == x86_64 ]] || die "the NVIDIA userland step only supports x86_64"
    if find /usr/lib /usr/lib64 -maxdepth 2 -name "libnvidia-encode.so.${ver}" 2>/dev/null | grep -q .; then
        log "NVIDIA userland ${ver} is already installed"
        return 0
    fi
    apt_install kmod
    run="/tmp/NVIDIA-Linux-x86_64-${ver}.run"
    url="https://download.nvidia.com/XFree86/Linux-x86_64/${ver}/NVIDIA-Linux-x86_64-${ver}.run"
    log "Downloading the NVIDIA ${ver} driver package from NVIDIA (${url})"
    curl -fL --retry 3 --progress-bar -o "$run" "$url" ||
        die "could not download ${url}; is ${ver} the exact version running on the host?"
    log "Installing the NVIDIA ${ver} userland without kernel module (nvidia-installer --no-kernel-module --silent)"
    if ! sh "$run" --no-kernel-module --silent; then
        tail -n 40 /var/log/nvidia-installer.log >&2 || true
        rm -f "$run"
        die "nvidia-installer failed (log: /var/log/nvidia-installer.log)"
    fi
    rm -f "$run"
    log "NVIDIA userland ${ver} installed"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L; then
        log "nvidia-smi sees the GPU"
    else
        warn "nvidia-smi cannot reach the GPU yet; check that the store attached /dev/nvidia* to this container"
    fi
}

install_gpu_support() {
    if [[ $HWACCEL == none ]]; then
        log "GPU drivers: skipped (hardware acceleration set to 'none')"
        return 0
    fi
    case $GPU_VENDOR in
        "")
            log "No GPU attached: Jellyfin will transcode in software"
            return 0
            ;;
        intel | amd) install_vaapi_drivers ;;
        nvidia) install_nvidia_userland ;;
    esac
    if [[ $GPU_VENDOR != nvidia ]]; then
        if compgen -G '/dev/dri/renderD*' >/dev/null; then
            log "Render nodes: $(stat -c '%n (%U:%G %a)' /dev/dri/renderD* | paste -sd ' ' -)"
        else
            warn "no /dev/dri/renderD* node in this container; hardware transcoding will not work"
        fi
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
