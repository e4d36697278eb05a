#!/usr/bin/env bash
# Shared helpers for the jellyfin scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

JELLYFIN_DATA=/var/lib/jellyfin
JELLYFIN_ETC=/etc/jellyfin
JELLYFIN_SYSTEM_XML=$JELLYFIN_ETC/system.xml
JELLYFIN_DB=$JELLYFIN_DATA/data/jellyfin.db
# Jellyfin keeps its server settings, among them whether the startup wizard (which creates the
# first administrator) has run, in /etc/jellyfin on the root disk. A copy on the config volume
# lets a reinstall that keeps the volume get them back instead of reopening the wizard.
ETC_COPY=$JELLYFIN_DATA/.appstore-etc
RESTORED_MARKER=$JELLYFIN_ETC/.appstore-restored
WIZARD_DONE='<IsStartupWizardCompleted>true</IsStartupWizardCompleted>'
# Jellyfin's repository signing key ("Jellyfin Team <team@jellyfin.org>"), trusted only with this
# fingerprint.
JELLYFIN_KEY_URL=https://repo.jellyfin.org/jellyfin_team.gpg.key
JELLYFIN_KEY_FPR=4918AABC486CA052358D778D49023CD01DE21A7B
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

# Downloads Jellyfin's key file, checks that it holds the key with JELLYFIN_KEY_FPR (gpg
# --show-keys lists the fingerprints without importing anything) and gives apt only that key.
# Needs curl and gpg.
add_jellyfin_repository() {
    local codename arch tmp home fprs
    # shellcheck disable=SC1091
    codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-trixie}")
    arch=$(dpkg --print-architecture)
    log "Adding the Jellyfin repository (debian ${codename}, ${arch}, key ${JELLYFIN_KEY_FPR})"
    install -d -m 0755 /etc/apt/keyrings
    tmp=$(mktemp)
    home=$(mktemp -d)
    curl -fsSL --retry 3 "$JELLYFIN_KEY_URL" -o "$tmp" || die "could not download $JELLYFIN_KEY_URL"
    fprs=$(GNUPGHOME=$home gpg --batch --show-keys --with-colons "$tmp" 2>/dev/null |
        awk -F: '$1 == "pub" { want = 1 } $1 == "fpr" && want { print $10; want = 0 }') || fprs=""
    if ! grep -qx "$JELLYFIN_KEY_FPR" <<<"$fprs"; then
        rm -rf "$tmp" "$home"
        die "$JELLYFIN_KEY_URL has no key with the fingerprint $JELLYFIN_KEY_FPR (found: $(tr '\n' ' ' <<<"${fprs:-none}")); refusing to trust it"
    fi
    GNUPGHOME=$home gpg --batch --quiet --import "$tmp" 2>/dev/null || die "gpg could not read $JELLYFIN_KEY_URL"
    GNUPGHOME=$home gpg --batch --armor --export "$JELLYFIN_KEY_FPR" >"$tmp.export"
    gpgconf --homedir "$home" --kill all >/dev/null 2>&1 || true
    rm -rf "$home"
    grep -q 'BEGIN PGP PUBLIC KEY BLOCK' "$tmp.export" || die "could not export the Jellyfin key $JELLYFIN_KEY_FPR"
    chmod 0644 "$tmp.export"
    mv -f "$tmp.export" "$KEYRING"
    rm -f "$tmp"
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

# Keeps a copy of /etc/jellyfin on the config volume ($ETC_COPY, mode 0750, owned by jellyfin).
# Replaced whole, so it always matches the settings of this container.
save_etc_to_volume() {
    local tmp group
    if [[ ! -f $JELLYFIN_SYSTEM_XML ]] || ! getent passwd jellyfin >/dev/null; then
        warn "$JELLYFIN_SYSTEM_XML does not exist yet; no copy of the settings kept on the config volume"
        return 0
    fi
    group=$(id -gn jellyfin)
    install -d -m 0750 "$JELLYFIN_DATA"
    tmp=$(mktemp -d "$JELLYFIN_DATA/.appstore-etc.XXXXXX") || return 1
    cp -a "$JELLYFIN_ETC/." "$tmp/" || {
        rm -rf "$tmp"
        return 1
    }
    rm -f "$tmp/${RESTORED_MARKER##*/}"
    chown -R "jellyfin:$group" "$tmp" || return 1
    chmod 0750 "$tmp" || return 1
    rm -rf "$ETC_COPY"
    mv "$tmp" "$ETC_COPY" || return 1
    log "Kept a copy of $JELLYFIN_ETC on the config volume ($ETC_COPY)"
}

# A config volume from an earlier container brings its copy of /etc/jellyfin: put it back once,
# before Jellyfin runs with the package's fresh settings (which would reopen the startup wizard).
restore_etc_from_volume() {
    local group mode
    [[ -f $ETC_COPY/system.xml ]] || return 0
    if [[ -e $RESTORED_MARKER ]]; then
        log "$JELLYFIN_ETC was already restored from the config volume"
        return 0
    fi
    log "Restoring Jellyfin's settings ($JELLYFIN_ETC) from the copy on the config volume"
    systemctl stop jellyfin
    install -d -m 0755 "$JELLYFIN_ETC"
    group=$(stat -c %G "$JELLYFIN_ETC")
    mode=$(stat -c %a "$JELLYFIN_ETC")
    cp -a "$ETC_COPY/." "$JELLYFIN_ETC/"
    chown -R "jellyfin:$group" "$JELLYFIN_ETC"
    chmod "$mode" "$JELLYFIN_ETC"
    touch "$RESTORED_MARKER"
}

# Number of Jellyfin users in the database, or nothing when it cannot be read.
jellyfin_user_count() {
    local n
    command -v sqlite3 >/dev/null || return 0
    n=$(sqlite3 -readonly "$JELLYFIN_DB" 'SELECT count(*) FROM Users;' 2>/dev/null) || return 0
    [[ $n =~ ^[0-9]+$ ]] && printf '%s' "$n"
    return 0
}

# Belt and braces for config volumes without a copy of /etc/jellyfin (from version 1.1.0 and
# earlier): a volume whose database has users must not meet an open startup wizard, which would
# let anyone reaching the port create an administrator. Argument: "yes" when the database was on
# the volume before this install put the package in (used when the users cannot be counted).
ensure_wizard_completed() {
    local had_db=${1:-no} users owner mode
    [[ -f $JELLYFIN_DB ]] || return 0
    users=$(jellyfin_user_count)
    if [[ $users == 0 ]]; then
        log "The Jellyfin database has no users yet; the startup wizard stays open"
        return 0
    fi
    if [[ -z $users && $had_db != yes ]]; then
        log "The Jellyfin database was created by this install; the startup wizard stays open"
        return 0
    fi
    if [[ -f $JELLYFIN_SYSTEM_XML ]] && grep -qF "$WIZARD_DONE" "$JELLYFIN_SYSTEM_XML"; then
        log "The startup wizard is completed"
        return 0
    fi
    log "The config volume holds Jellyfin's database${users:+ with $users user(s)}: closing the startup wizard"
    systemctl stop jellyfin
    if [[ -s $JELLYFIN_SYSTEM_XML ]]; then
        owner=$(stat -c '%u:%g' "$JELLYFIN_SYSTEM_XML")
        mode=$(stat -c '%a' "$JELLYFIN_SYSTEM_XML")
        perl -0777 -pi -e '
            s{<IsStartupWizardCompleted\s*/>|<IsStartupWizardCompleted>.*?</IsStartupWizardCompleted>}{<IsStartupWizardCompleted>true</IsStartupWizardCompleted>}s
                or s{</ServerConfiguration>}{  <IsStartupWizardCompleted>true</IsStartupWizardCompleted>\n</ServerConfiguration>}
        ' "$JELLYFIN_SYSTEM_XML"
        chown "$owner" "$JELLYFIN_SYSTEM_XML"
        chmod "$mode" "$JELLYFIN_SYSTEM_XML"
    else
        # Jellyfin fills in every setting missing from the file with its default.
        install -d -m 0755 "$JELLYFIN_ETC"
        cat >"$JELLYFIN_SYSTEM_XML" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<ServerConfiguration xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  ${WIZARD_DONE}
</ServerConfiguration>
EOF
        chown "jellyfin:$(stat -c %G "$JELLYFIN_ETC")" "$JELLYFIN_SYSTEM_XML"
        chmod 0644 "$JELLYFIN_SYSTEM_XML"
    fi
    grep -qF "$WIZARD_DONE" "$JELLYFIN_SYSTEM_XML" || die "could not mark the startup wizard as completed in $JELLYFIN_SYSTEM_XML"
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
