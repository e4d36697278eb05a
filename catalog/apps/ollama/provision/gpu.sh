#!/usr/bin/env bash
# GPU support for Ollama. Called by install.sh and upgrade.sh, and usable on its own:
#
#   gpu.sh userland   installs what the GPU needs inside the container (may download):
#                     NVIDIA: the driver's userland libraries (libcuda, nvidia-smi) of exactly the
#                     host's version (NVIDIA .run, --no-kernel-module); AMD: Ollama's ROCm
#                     libraries (ollama-linux-amd64-rocm.tar.zst of the same pinned release)
#   gpu.sh configure  puts the ollama user in the device nodes' groups and writes the systemd
#                     drop-in that names the GPU and its nodes for ollama.service; works without
#                     Ollama installed and downloads nothing
#   gpu.sh check      proves that the ollama user can open the nodes for reading and writing and
#                     that the drop-in names them
#
# The vendor comes from APPSTORE_GPU_VENDOR (nvidia or amd), else from the drop-in an earlier
# `configure` wrote. NVIDIA's version comes from APPSTORE_NVIDIA_DRIVER_VERSION, else from the
# host's kernel module as seen in /proc/driver/nvidia/version.
set -euo pipefail

APP=ollama
SERVICE=ollama
SERVICE_USER=ollama
SERVICE_HOME=/usr/share/ollama
SUPPORTED="nvidia amd"
DROPIN=/etc/systemd/system/$SERVICE.service.d/appstore-gpu.conf
OLLAMA_PREFIX=/usr/local
# The Ollama release whose ROCm libraries are installed: the one install.sh passes, else the one
# installed, else this entry's pin (the same as in common.sh).
OLLAMA_VERSION=${OLLAMA_VERSION:-$(cat "$OLLAMA_PREFIX/lib/ollama/.appstore-version" 2>/dev/null || echo 0.32.15)}

export DEBIAN_FRONTEND=noninteractive

log() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf 'ERROR: gpu.sh: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# ---------------------------------------------------------------------------------------------
# Vendor and device nodes

vendor() {
    local v=${APPSTORE_GPU_VENDOR:-}
    if [[ -z $v && -f $DROPIN ]]; then
        v=$(sed -n 's/^Environment="APPSTORE_GPU_VENDOR=\([a-z]*\)"$/\1/p' "$DROPIN" | head -n 1)
    fi
    [[ -n $v ]] || die "APPSTORE_GPU_VENDOR is not set (one of: $SUPPORTED)"
    case " $SUPPORTED " in
        *" $v "*) printf '%s' "$v" ;;
        *) die "$APP does not support GPU vendor '$v' (supported: $SUPPORTED)" ;;
    esac
}

# The vendor's character device nodes in /dev, one per line.
devices() {
    local d
    case $1 in
        amd)
            for d in /dev/dri/renderD* /dev/kfd; do
                if [[ -c $d ]]; then printf '%s\n' "$d"; fi
            done
            ;;
        nvidia)
            for d in /dev/nvidia[0-9]* /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools /dev/nvidia-modeset; do
                if [[ -c $d ]]; then printf '%s\n' "$d"; fi
            done
            ;;
    esac
}

# Fails unless the nodes the vendor needs are there.
require_devices() {
    local vendor=$1 list
    shift
    list=" $* "
    case $vendor in
        amd)
            [[ $list == *" /dev/dri/renderD"* ]] ||
                die "no render node (/dev/dri/renderD*) in this container; attach the AMD GPU to it"
            [[ $list == *" /dev/kfd "* ]] ||
                warn "/dev/kfd is missing in this container: ROCm cannot use the GPU without it (attach the GPU with the rocm profile)"
            ;;
        nvidia)
            [[ $list =~ \ /dev/nvidia[0-9]+\  ]] ||
                die "no /dev/nvidiaN node in this container; attach the NVIDIA GPU to it"
            [[ $list == *" /dev/nvidiactl "* ]] || die "/dev/nvidiactl is missing in this container"
            ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# Service user, groups, systemd

ensure_service_user() {
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
        useradd --system --gid "$SERVICE_USER" --home-dir "$SERVICE_HOME" --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
        install -d -m 0755 -o "$SERVICE_USER" -g "$SERVICE_USER" "$SERVICE_HOME"
        info "created the system user $SERVICE_USER"
    fi
}

# Puts the service user in the group of every node that needs one; prints those groups on one
# line. Nodes of group root (NVIDIA's, mode 0666) and world-writable nodes need none.
grant_access() {
    local d gid mode group found=()
    for d in "$@"; do
        gid=$(stat -c %g "$d")
        mode=$(stat -c %a "$d")
        if ((gid == 0 || (8#$mode & 8#006) == 8#006)); then
            continue
        fi
        if ((gid == 65534)); then
            warn "$d belongs to an unmapped host group (shown as nogroup); no container group can open it"
            continue
        fi
        group=$(getent group "$gid" | cut -d: -f1)
        if [[ -z $group ]]; then
            group=gpu$gid
            groupadd --system --gid "$gid" "$group"
            info "created group $group for gid $gid ($d)"
        fi
        if ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$group"; then
            usermod -a -G "$group" "$SERVICE_USER"
        fi
        [[ " ${found[*]} " == *" $group "* ]] || found+=("$group")
    done
    printf '%s' "${found[*]}"
}

systemd_running() { [[ -d /run/systemd/system ]]; }

service_active() { systemd_running && systemctl is-active --quiet "$SERVICE"; }

write_dropin() {
    local vendor=$1 groups=$2 tmp
    shift 2
    install -d -m 0755 "$(dirname "$DROPIN")"
    tmp=$(mktemp "$DROPIN.XXXXXX")
    {
        printf '# Managed by PVE App Store (app %s): written by gpu.sh configure.\n' "$APP"
        printf '[Service]\n'
        if [[ -n $groups ]]; then printf 'SupplementaryGroups=%s\n' "$groups"; fi
        printf 'Environment="APPSTORE_GPU_VENDOR=%s"\n' "$vendor"
        printf 'Environment="APPSTORE_GPU_DEVICES=%s"\n' "$*"
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$DROPIN"
}

# ---------------------------------------------------------------------------------------------
# Userland

nvidia_version() {
    local v=${APPSTORE_NVIDIA_DRIVER_VERSION:-}
    if [[ -z $v && -r /proc/driver/nvidia/version ]]; then
        v=$(awk '/^NVRM version:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+(\.[0-9]+)?$/) { print $i; exit } }' \
            /proc/driver/nvidia/version)
    fi
    [[ -n $v ]] || die "the host's NVIDIA driver version is unknown (APPSTORE_NVIDIA_DRIVER_VERSION is empty and /proc/driver/nvidia/version is unreadable)"
    [[ $v =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] || die "unexpected NVIDIA driver version '$v'"
    printf '%s' "$v"
}

# The userland libraries (libcuda, NVENC/NVDEC, nvidia-smi) of exactly the host driver's version,
# from NVIDIA's .run verified against NVIDIA's published .sha256sum. The kernel module stays the
# host's (--no-kernel-module).
install_nvidia_userland() {
    local ver run base dir expected
    ver=$(nvidia_version)
    [[ $(uname -m) == x86_64 ]] || die "the NVIDIA userland step supports x86_64 only"
    if [[ -e /usr/lib/x86_64-linux-gnu/libcuda.so.$ver ]]; then
        log "NVIDIA userland $ver is already installed"
        return 0
    fi
    apt_install ca-certificates curl kmod xz-utils
    run=NVIDIA-Linux-x86_64-$ver.run
    base=https://download.nvidia.com/XFree86/Linux-x86_64/$ver
    dir=$(mktemp -d /var/tmp/nvidia-userland.XXXXXX)
    log "Downloading $base/$run"
    curl -fL --retry 3 --progress-bar -o "$dir/$run" "$base/$run" ||
        die "could not download $base/$run; is $ver the exact driver version of the host?"
    curl -fsSL --retry 3 -o "$dir/$run.sha256sum" "$base/$run.sha256sum" ||
        die "could not download NVIDIA's checksum $base/$run.sha256sum"
    expected=$(awk -v f="$run" '$2 == f || $2 == "*" f { print $1; exit }' "$dir/$run.sha256sum")
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "no SHA-256 for $run in NVIDIA's checksum file"
    printf '%s  %s\n' "$expected" "$dir/$run" | sha256sum -c --quiet - ||
        die "$run does not match NVIDIA's published SHA-256"
    log "Checksum verified; installing the NVIDIA $ver userland (--no-kernel-module)"
    if ! TMPDIR=$dir sh "$dir/$run" --silent --accept-license --no-kernel-module \
        --no-x-check --no-nouveau-check; then
        tail -n 40 /var/log/nvidia-installer.log >&2 || true
        rm -rf "$dir"
        die "nvidia-installer failed (log: /var/log/nvidia-installer.log)"
    fi
    rm -rf "$dir"
    log "NVIDIA userland $ver installed"
}

# Ollama's ROCm libraries of the same release as the installed Ollama, verified against the
# release's published sha256sum.txt, unpacked next to it (lib/ollama/rocm*).
install_rocm_libraries() {
    local name=ollama-linux-amd64-rocm.tar.zst marker=$OLLAMA_PREFIX/lib/ollama/.appstore-rocm
    local base dir expected
    [[ $OLLAMA_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "unexpected OLLAMA_VERSION '$OLLAMA_VERSION'"
    [[ $(uname -m) == x86_64 ]] || die "Ollama's ROCm build exists for x86_64 only"
    if [[ -f $marker && $(cat "$marker") == "$OLLAMA_VERSION" ]]; then
        log "Ollama's ROCm libraries $OLLAMA_VERSION are already installed"
        return 0
    fi
    apt_install ca-certificates curl zstd
    base=https://github.com/ollama/ollama/releases/download/v$OLLAMA_VERSION
    dir=$(mktemp -d /var/tmp/ollama-rocm.XXXXXX)
    curl -fsSL --retry 3 -o "$dir/sha256sum.txt" "$base/sha256sum.txt" ||
        die "could not download $base/sha256sum.txt"
    expected=$(awk -v f="$name" '$2 == f || $2 == "./" f || $2 == "*" f { print $1; exit }' "$dir/sha256sum.txt")
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "no SHA-256 for $name in the release's sha256sum.txt"
    log "Downloading $base/$name (large; this takes a while)"
    curl -fsSL --retry 3 -o "$dir/$name" "$base/$name" || die "could not download $base/$name"
    printf '%s  %s\n' "$expected" "$dir/$name" | sha256sum -c --quiet - ||
        die "$name does not match the release's published SHA-256"
    log "Checksum verified; unpacking the ROCm libraries into $OLLAMA_PREFIX/lib/ollama"
    install -d -m 0755 "$OLLAMA_PREFIX/lib/ollama"
    zstd -dc "$dir/$name" | tar -xf - -C "$OLLAMA_PREFIX" --no-same-owner
    rm -rf "$dir"
    printf '%s\n' "$OLLAMA_VERSION" >"$marker"
    log "Ollama's ROCm libraries $OLLAMA_VERSION installed"
}

cmd_userland() {
    local vendor
    vendor=$(vendor)
    log "Installing the $vendor GPU userland for $APP"
    apt-get update -q
    case $vendor in
        nvidia) install_nvidia_userland ;;
        amd) install_rocm_libraries ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# configure / check

cmd_configure() {
    local vendor devs list groups
    vendor=$(vendor)
    devs=()
    list=$(devices "$vendor")
    if [[ -n $list ]]; then mapfile -t devs <<<"$list"; fi
    require_devices "$vendor" "${devs[@]}"
    ensure_service_user
    groups=$(grant_access "${devs[@]}")
    write_dropin "$vendor" "$groups" "${devs[@]}"
    if systemd_running; then
        systemctl daemon-reload
        # A running server only finds a GPU when it starts.
        if service_active; then systemctl restart "$SERVICE"; fi
    fi
    printf '==> GPU: %s configured for %s: %s\n' "$APP" "$vendor" "${devs[*]}"
}

cmd_check() {
    local vendor devs list d problems=()
    ((EUID == 0)) || die "gpu.sh check must run as root"
    vendor=$(vendor)
    devs=()
    list=$(devices "$vendor")
    if [[ -n $list ]]; then mapfile -t devs <<<"$list"; fi
    require_devices "$vendor" "${devs[@]}"
    id -u "$SERVICE_USER" >/dev/null 2>&1 ||
        die "the user $SERVICE_USER does not exist; run gpu.sh configure first"
    for d in "${devs[@]}"; do
        if ! runuser -u "$SERVICE_USER" -- test -r "$d" -a -w "$d"; then
            problems+=("$SERVICE_USER cannot open $d for reading and writing (owner $(stat -c '%U:%G, mode %a' "$d"); groups of $SERVICE_USER: $(id -nG "$SERVICE_USER"))")
        fi
        if ! grep -Eq "^Environment=\"APPSTORE_GPU_DEVICES=(.* )?$d( .*)?\"$" "$DROPIN" 2>/dev/null; then
            problems+=("$DROPIN does not name $d; run gpu.sh configure")
        fi
    done
    if ! grep -qx "Environment=\"APPSTORE_GPU_VENDOR=$vendor\"" "$DROPIN" 2>/dev/null; then
        problems+=("$DROPIN does not record the vendor $vendor; run gpu.sh configure")
    fi
    if ((${#problems[@]})); then
        printf 'ERROR: GPU check for %s (%s) failed:\n' "$APP" "$vendor" >&2
        printf '  - %s\n' "${problems[@]}" >&2
        exit 1
    fi
    printf '==> GPU: %s check passed for %s: %s\n' "$APP" "$vendor" "${devs[*]}"
}

case ${1:-} in
    userland) cmd_userland ;;
    configure) cmd_configure ;;
    check) cmd_check ;;
    *)
        printf 'usage: %s userland|configure|check\n' "${0##*/}" >&2
        exit 2
        ;;
esac
