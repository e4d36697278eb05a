#!/usr/bin/env bash
# GPU support for Jellyfin. Called by install.sh and upgrade.sh, and usable on its own:
#
#   gpu.sh userland   installs what the GPU needs inside the container (may download):
#                     Intel/AMD: VA-API drivers from Debian; NVIDIA: the driver's userland
#                     libraries of exactly the host's version (NVIDIA .run, --no-kernel-module)
#   gpu.sh configure  points Jellyfin at the attached device nodes (encoding.xml), puts the
#                     jellyfin user in the nodes' groups and writes a systemd drop-in; works
#                     without Jellyfin installed and downloads nothing
#   gpu.sh check      proves that the jellyfin user can open the nodes for reading and writing
#                     and that Jellyfin's settings name them
#   gpu.sh off        sets Jellyfin's hardware acceleration back to none (the drop-in stays)
#
# The vendor comes from APPSTORE_GPU_VENDOR (intel, amd or nvidia), else from the drop-in an
# earlier `configure` wrote. NVIDIA's version comes from APPSTORE_NVIDIA_DRIVER_VERSION, else
# from the host's kernel module as seen in /proc/driver/nvidia/version.
set -euo pipefail

APP=jellyfin
SERVICE=jellyfin
SERVICE_USER=jellyfin
SERVICE_HOME=/var/lib/jellyfin
SUPPORTED="intel amd nvidia"
CONFIG_DIR=/etc/jellyfin
ENCODING_XML=$CONFIG_DIR/encoding.xml
DROPIN=/etc/systemd/system/$SERVICE.service.d/appstore-gpu.conf
# Decoders switched on when hardware acceleration is first enabled: every GPU of the last ten
# years decodes these. More can be ticked under Dashboard > Playback > Transcoding.
DEFAULT_CODECS="h264 hevc"

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

first_render_node() {
    local d
    for d in "$@"; do
        if [[ $d == /dev/dri/renderD* ]]; then
            printf '%s' "$d"
            return 0
        fi
    done
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
# Jellyfin's encoding.xml

# Sets the hardware acceleration elements in encoding.xml (created when missing). Existing
# elements are replaced in place, missing ones added before </EncodingOptions>; everything else
# is kept. The decoder list is only set when acceleration was off before, so a user's own choice
# survives upgrades.
set_encoding() {
    local type=$1 device=$2 owner=$SERVICE_USER:$SERVICE_USER mode=0644 tmp
    if [[ ! -d $CONFIG_DIR ]]; then
        install -d -m 0755 -o "$SERVICE_USER" -g "$SERVICE_USER" "$CONFIG_DIR"
    fi
    tmp=$(mktemp "$CONFIG_DIR/.encoding.xml.XXXXXX")
    if [[ -s $ENCODING_XML ]]; then
        owner=$(stat -c %u:%g "$ENCODING_XML")
        mode=$(stat -c %a "$ENCODING_XML")
        cat "$ENCODING_XML" >"$tmp"
    else
        printf '%s\n' '<?xml version="1.0" encoding="utf-8"?>' \
            '<EncodingOptions xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">' \
            '</EncodingOptions>' >"$tmp"
    fi
    HW_TYPE=$type HW_DEVICE=$device HW_CODECS=$DEFAULT_CODECS perl -0777 -i -pe '
        s{<EncodingOptions\b([^>]*?)\s*/>}{<EncodingOptions$1>\n</EncodingOptions>}s;
        my $prev = m{<HardwareAccelerationType>\s*([^<]*?)\s*</HardwareAccelerationType>} ? $1 : "none";
        my @set = (["HardwareAccelerationType", $ENV{HW_TYPE}]);
        if ($ENV{HW_DEVICE} ne "") {
            push @set, ["VaapiDevice", $ENV{HW_DEVICE}];
            push @set, ["QsvDevice", $ENV{HW_DEVICE}] if $ENV{HW_TYPE} eq "qsv";
        }
        push @set, ["EnableHardwareEncoding", "true"] if $ENV{HW_TYPE} ne "none";
        for my $kv (@set) {
            my ($k, $v) = @$kv;
            s{<$k\s*/>|<$k>[^<]*</$k>}{<$k>$v</$k>}
                or s{(\s*)</EncodingOptions>}{\n  <$k>$v</$k>$1</EncodingOptions>};
        }
        if ($ENV{HW_TYPE} ne "none" && ($prev eq "none" || $prev eq "")) {
            my $list = join "", map { "\n    <string>$_</string>" } split / /, $ENV{HW_CODECS};
            my $block = "<HardwareDecodingCodecs>$list\n  </HardwareDecodingCodecs>";
            s{<HardwareDecodingCodecs\s*/>|<HardwareDecodingCodecs>.*?</HardwareDecodingCodecs>}{$block}s
                or s{(\s*)</EncodingOptions>}{\n  $block$1</EncodingOptions>};
        }
    ' "$tmp"
    chown "$owner" "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$ENCODING_XML"
}

accel_type() {
    case $1 in
        intel) printf 'qsv' ;;
        amd) printf 'vaapi' ;;
        nvidia) printf 'nvenc' ;;
    esac
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
            # Debian main only (the -non-free driver would need another component). Jellyfin's
            # ffmpeg carries its own Intel media driver; these serve vainfo and the fallbacks.
            apt_install intel-media-va-driver i965-va-driver intel-opencl-icd vainfo
            ;;
        amd) apt_install mesa-va-drivers vainfo ;;
        nvidia) install_nvidia_userland ;;
    esac
}

# ---------------------------------------------------------------------------------------------
# configure / check / off

cmd_configure() {
    local vendor devs list groups render type was_active=no
    vendor=$(vendor)
    devs=()
    list=$(devices "$vendor")
    if [[ -n $list ]]; then mapfile -t devs <<<"$list"; fi
    require_devices "$vendor" "${devs[@]}"
    ensure_service_user
    groups=$(grant_access "${devs[@]}")
    render=$(first_render_node "${devs[@]}")
    if service_active; then
        # Jellyfin writes encoding.xml itself; it must not run while the file changes.
        systemctl stop "$SERVICE"
        was_active=yes
    fi
    type=$(accel_type "$vendor")
    # An Intel GPU someone switched to VA-API (older chips need it) stays on VA-API.
    if [[ $vendor == intel ]] && grep -q '<HardwareAccelerationType>vaapi</HardwareAccelerationType>' "$ENCODING_XML" 2>/dev/null; then
        type=vaapi
    fi
    set_encoding "$type" "$render"
    write_dropin "$vendor" "$groups" "${devs[@]}"
    if systemd_running; then
        systemctl daemon-reload
        if [[ $was_active == yes ]]; then systemctl start "$SERVICE"; fi
    fi
    printf '==> GPU: %s configured for %s: %s\n' "$APP" "$vendor" "${devs[*]}"
}

cmd_check() {
    local vendor devs list d problems=() type render
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
    type=$(accel_type "$vendor")
    if [[ ! -f $ENCODING_XML ]]; then
        problems+=("$ENCODING_XML is missing; run gpu.sh configure")
    else
        if [[ $type == qsv ]] && grep -q '<HardwareAccelerationType>vaapi</HardwareAccelerationType>' "$ENCODING_XML"; then
            type=vaapi
        fi
        grep -q "<HardwareAccelerationType>$type</HardwareAccelerationType>" "$ENCODING_XML" ||
            problems+=("$ENCODING_XML does not set HardwareAccelerationType to $type")
        render=$(first_render_node "${devs[@]}")
        if [[ -n $render ]]; then
            grep -q "<VaapiDevice>$render</VaapiDevice>" "$ENCODING_XML" ||
                problems+=("$ENCODING_XML does not name $render as VaapiDevice")
            if [[ $type == qsv ]]; then
                grep -q "<QsvDevice>$render</QsvDevice>" "$ENCODING_XML" ||
                    problems+=("$ENCODING_XML does not name $render as QsvDevice")
            fi
        fi
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
    [[ -f $ENCODING_XML ]] || return 0
    if service_active; then
        systemctl stop "$SERVICE"
        was_active=yes
    fi
    set_encoding none ""
    if [[ $was_active == yes ]]; then systemctl start "$SERVICE"; fi
    log "Jellyfin's hardware acceleration is set to none"
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
