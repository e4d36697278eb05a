#!/usr/bin/env bash
# GPU support for Plex Media Server. Called by install.sh and upgrade.sh, and usable on its own:
#
#   gpu.sh userland   installs what the GPU needs inside the container (may download):
#                     Intel/AMD: VA-API drivers from Debian; NVIDIA: the driver's userland
#                     libraries of exactly the host's version (NVIDIA .run, --no-kernel-module)
#   gpu.sh configure  switches Plex's hardware transcoding on (Preferences.xml), puts the plex
#                     user in the device nodes' groups and writes a systemd drop-in naming the
#                     nodes; works without Plex installed and downloads nothing
#   gpu.sh check      proves that the plex user can open the nodes for reading and writing and
#                     that the settings name them
#   gpu.sh off        switches Plex's hardware transcoding off (the drop-in stays)
#
# The vendor comes from APPSTORE_GPU_VENDOR (intel, amd or nvidia), else from the drop-in an
# earlier `configure` wrote. NVIDIA's version comes from APPSTORE_NVIDIA_DRIVER_VERSION, else
# from the host's kernel module as seen in /proc/driver/nvidia/version.
set -euo pipefail

APP=plex
SERVICE=plexmediaserver
SERVICE_USER=plex
SERVICE_HOME=/var/lib/plexmediaserver
SUPPORTED="intel amd nvidia"
PREFS_DIR="$SERVICE_HOME/Library/Application Support/Plex Media Server"
PREFS="$PREFS_DIR/Preferences.xml"
DROPIN=/etc/systemd/system/$SERVICE.service.d/appstore-gpu.conf

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
        intel | amd)
            for d in /dev/dri/renderD*; do
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
        intel | amd)
            [[ $list == *" /dev/dri/renderD"* ]] ||
                die "no render node (/dev/dri/renderD*) in this container; attach the $vendor GPU to it"
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
# Plex's Preferences.xml

# Sets attributes of the <Preferences .../> element (the file is created when missing); every
# other attribute is kept. Arguments: NAME=VALUE pairs; values must need no XML escaping. The file
# is left with mode 0600: once the server is claimed it holds its plex.tv token.
set_prefs() {
    local owner=$SERVICE_USER:$SERVICE_USER mode=0600 tmp kv
    if [[ ! -d $PREFS_DIR ]]; then
        install -d -m 0755 -o "$SERVICE_USER" -g "$SERVICE_USER" "$SERVICE_HOME" \
            "$SERVICE_HOME/Library" "$SERVICE_HOME/Library/Application Support" "$PREFS_DIR"
    fi
    tmp=$(mktemp "$PREFS_DIR/.Preferences.xml.XXXXXX")
    if [[ -s $PREFS ]]; then
        owner=$(stat -c %u:%g "$PREFS")
        cat "$PREFS" >"$tmp"
    else
        printf '%s\n' '<?xml version="1.0" encoding="utf-8"?>' '<Preferences/>' >"$tmp"
    fi
    for kv in "$@"; do
        PREF_NAME=${kv%%=*} PREF_VALUE=${kv#*=} perl -0777 -i -pe '
            my ($k, $v) = ($ENV{PREF_NAME}, $ENV{PREF_VALUE});
            s{<Preferences((?:\s+[^\s=/>]+\s*=\s*"[^"]*")*)\s*(/?)>}{
                my ($attrs, $close) = ($1, $2);
                $attrs =~ s{(\s)\Q$k\E\s*=\s*"[^"]*"}{$1$k="$v"} or $attrs .= qq{ $k="$v"};
                "<Preferences$attrs$close>";
            }se or die "no <Preferences> element in the file\n";
        ' "$tmp"
    done
    chown "$owner" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$PREFS"
}

# Plex's own name of a GPU, "vendor:device:subvendor:subdevice@PCI address", read from sysfs for
# a device node; empty when sysfs does not show it (Plex then picks the GPU itself).
plex_device_id() {
    local node=$1 majmin s sysdev="" minor f field out=()
    case $node in
        /dev/dri/renderD*)
            majmin=$(printf '%d:%d' "0x$(stat -c %t "$node")" "0x$(stat -c %T "$node")")
            for s in /sys/class/drm/renderD*; do
                if [[ -r $s/dev && $(cat "$s/dev") == "$majmin" ]]; then
                    sysdev=$(readlink -f "$s/device")
                    break
                fi
            done
            ;;
        /dev/nvidia[0-9]*)
            minor=${node#/dev/nvidia}
            for f in /proc/driver/nvidia/gpus/*/information; do
                if [[ -r $f ]] && grep -Eq "^Device Minor:[[:space:]]+$minor\$" "$f"; then
                    sysdev=/sys/bus/pci/devices/$(basename "$(dirname "$f")")
                    break
                fi
            done
            ;;
    esac
    [[ -n $sysdev ]] || return 0
    for field in vendor device subsystem_vendor subsystem_device; do
        [[ -r $sysdev/$field ]] || return 0
        s=$(tr 'A-F' 'a-f' <"$sysdev/$field")
        s=${s#0x}
        [[ $s =~ ^[0-9a-f]{4}$ ]] || return 0
        out+=("$s")
    done
    f=$(basename "$sysdev")
    [[ $f =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || return 0
    printf '%s:%s:%s:%s@%s' "${out[@]}" "$f"
}

# The node whose GPU Plex should use: the render node, else /dev/nvidiaN.
gpu_node() {
    local d
    for d in "$@"; do
        if [[ $d == /dev/dri/renderD* || $d =~ ^/dev/nvidia[0-9]+$ ]]; then
            printf '%s' "$d"
            return 0
        fi
    done
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

cmd_userland() {
    local vendor
    vendor=$(vendor)
    log "Installing the $vendor GPU userland for $APP"
    apt-get update -q
    case $vendor in
        intel)
            # Debian main only (the -non-free driver would need another component). Plex's
            # transcoder brings its own driver build; these serve vainfo and the fallbacks.
            apt_install intel-media-va-driver vainfo
            ;;
        amd) apt_install mesa-va-drivers vainfo ;;
        nvidia) install_nvidia_userland ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# configure / check / off

cmd_configure() {
    local vendor devs list groups node id was_active=no prefs=()
    vendor=$(vendor)
    devs=()
    list=$(devices "$vendor")
    if [[ -n $list ]]; then mapfile -t devs <<<"$list"; fi
    require_devices "$vendor" "${devs[@]}"
    ensure_service_user
    groups=$(grant_access "${devs[@]}")
    prefs=(HardwareAcceleratedCodecs=1 HardwareAcceleratedEncoders=1)
    node=$(gpu_node "${devs[@]}")
    id=$(plex_device_id "$node")
    if [[ -n $id ]]; then
        prefs+=("HardwareDevicePath=$id")
    else
        info "sysfs does not show the PCI device of $node; Plex picks the GPU itself"
    fi
    if service_active; then
        # Plex rewrites Preferences.xml itself; it must not run while the file changes.
        systemctl stop "$SERVICE"
        was_active=yes
    fi
    set_prefs "${prefs[@]}"
    write_dropin "$vendor" "$groups" "${devs[@]}"
    if systemd_running; then
        systemctl daemon-reload
        if [[ $was_active == yes ]]; then systemctl start "$SERVICE"; fi
    fi
    printf '==> GPU: %s configured for %s: %s\n' "$APP" "$vendor" "${devs[*]}"
}

cmd_check() {
    local vendor devs list d problems=() pref
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
    if [[ ! -f $PREFS ]]; then
        problems+=("$PREFS is missing; run gpu.sh configure")
    else
        for pref in HardwareAcceleratedCodecs HardwareAcceleratedEncoders; do
            grep -q "[[:space:]]$pref=\"1\"" "$PREFS" ||
                problems+=("$PREFS does not set $pref=\"1\" (hardware transcoding is off)")
        done
    fi
    if ((${#problems[@]})); then
        printf 'ERROR: GPU check for %s (%s) failed:\n' "$APP" "$vendor" >&2
        printf '  - %s\n' "${problems[@]}" >&2
        exit 1
    fi
    printf '==> GPU: %s check passed for %s: %s\n' "$APP" "$vendor" "${devs[*]}"
}

cmd_off() {
    local was_active=no
    [[ -f $PREFS ]] || return 0
    if service_active; then
        systemctl stop "$SERVICE"
        was_active=yes
    fi
    set_prefs HardwareAcceleratedCodecs=0 HardwareAcceleratedEncoders=0
    if [[ $was_active == yes ]]; then systemctl start "$SERVICE"; fi
    log "Plex's hardware transcoding is off"
}

case ${1:-} in
    userland) cmd_userland ;;
    configure) cmd_configure ;;
    check) cmd_check ;;
    off) cmd_off ;;
    *)
        printf 'usage: %s userland|configure|check|off\n' "${0##*/}" >&2
        exit 2
        ;;
esac
