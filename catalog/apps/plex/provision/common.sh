#!/usr/bin/env bash
# Shared helpers for the plex scripts. Sourced, not run. Settings come only from the environment
# that app.yml declares. Plex Media Server comes from Plex's own apt repository, whose signing key
# is checked against the fingerprint Plex publishes; the version is pinned.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The pinned release; raise it (and the catalog version) to upgrade.
PLEX_VERSION=1.43.4.10903-e5521bd8c
PLEX_KEY_URL=https://downloads.plex.tv/plex-keys/PlexSign.v2.key
PLEX_KEY_FPR=6EFFEB478A6559D75C7C4FE706C521790B9CFFDE
PLEX_REPO=https://repo.plex.tv/deb/
KEYRING=/etc/apt/keyrings/plexmediaserver.v2.asc
SOURCES=/etc/apt/sources.list.d/plexmediaserver.sources
APT_PIN=/etc/apt/preferences.d/plexmediaserver
PLEX_HOME=/var/lib/plexmediaserver
PREFS_DIR="$PLEX_HOME/Library/Application Support/Plex Media Server"
PREFS="$PREFS_DIR/Preferences.xml"
PROVISION_DIR=$(dirname "${BASH_SOURCE[0]}")
GPU_DROPIN=/etc/systemd/system/plexmediaserver.service.d/appstore-gpu.conf

PLEX_SERVER_NAME=${PLEX_SERVER_NAME:-}
PLEX_CLAIM_TOKEN=${PLEX_CLAIM_TOKEN:-}
HWACCEL=${HWACCEL:-auto}
# The store passes the attached GPU as APPSTORE_GPU_VENDOR. Jobs that run later (upgrade,
# reconfigure) may not get it: then the vendor gpu.sh configure recorded is used.
GPU_VENDOR=${APPSTORE_GPU_VENDOR:-}
if [[ -z $GPU_VENDOR && -f $GPU_DROPIN ]]; then
    GPU_VENDOR=$(sed -n 's/^Environment="APPSTORE_GPU_VENDOR=\([a-z]*\)"$/\1/p' "$GPU_DROPIN" | head -n 1)
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
    if [[ -n $PLEX_SERVER_NAME && ! $PLEX_SERVER_NAME =~ ^[A-Za-z0-9][A-Za-z0-9\ ._-]{0,63}$ ]]; then
        die "PLEX_SERVER_NAME may only contain letters, digits, spaces, '.', '_' and '-'"
    fi
    if [[ ! $PLEX_CLAIM_TOKEN =~ ^[A-Za-z0-9_-]{0,64}$ ]]; then
        die "PLEX_CLAIM_TOKEN may only contain letters, digits, '_' and '-'"
    fi
    return 0
}

# Plex's repository, trusted only after its key matched the fingerprint Plex publishes.
add_plex_repository() {
    local tmp home fprs
    log "Adding Plex's apt repository (${PLEX_REPO}, key ${PLEX_KEY_FPR})"
    install -d -m 0755 /etc/apt/keyrings
    tmp=$(mktemp)
    home=$(mktemp -d)
    curl -fsSL --retry 3 "$PLEX_KEY_URL" -o "$tmp" || die "could not download $PLEX_KEY_URL"
    fprs=$(GNUPGHOME=$home gpg --batch --show-keys --with-colons "$tmp" 2>/dev/null |
        awk -F: '$1 == "pub" { want = 1; n++ } $1 == "fpr" && want { print $10; want = 0 } END { if (n != 1) exit 1 }') ||
        die "$PLEX_KEY_URL does not hold exactly one OpenPGP key"
    rm -rf "$home"
    [[ $fprs == "$PLEX_KEY_FPR" ]] ||
        die "Plex's signing key has the fingerprint ${fprs:-none}, expected $PLEX_KEY_FPR; refusing to trust it"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$KEYRING"
    cat >"$SOURCES" <<SOURCES
Types: deb
URIs: ${PLEX_REPO}
Suites: public
Components: main
Architectures: $(dpkg --print-architecture)
Signed-By: ${KEYRING}
SOURCES
    # apt keeps the pinned version: `apt upgrade` inside the container does not move Plex.
    cat >"$APT_PIN" <<PIN
# Managed by PVE App Store (app plex): the catalog entry pins this version.
Package: plexmediaserver
Pin: version ${PLEX_VERSION}
Pin-Priority: 1001
PIN
    chmod 0644 "$APT_PIN"
    # Older installs pointed at the retired repository with the old key.
    local f
    for f in /etc/apt/sources.list.d/plexmediaserver.list /etc/apt/sources.list.d/plex.list; do
        if [[ -f $f ]] && grep -q 'downloads.plex.tv/repo' "$f"; then
            rm -f "$f"
            log "Removed the retired repository entry $f"
        fi
    done
}

installed_version() { dpkg-query -W -f='${Version}' plexmediaserver 2>/dev/null || true; }

install_plex_package() {
    local have
    have=$(installed_version)
    if [[ $have == "$PLEX_VERSION" ]]; then
        log "Plex Media Server $PLEX_VERSION is already installed"
        return 0
    fi
    if [[ -n $have ]] && dpkg --compare-versions "$have" gt "$PLEX_VERSION"; then
        log "Plex Media Server $have is newer than the pinned $PLEX_VERSION (updated outside the store); keeping it"
        return 0
    fi
    log "Installing plexmediaserver=$PLEX_VERSION${have:+ (over $have)}"
    if ! apt_install "plexmediaserver=$PLEX_VERSION"; then
        apt-cache madison plexmediaserver >&2 || true
        die "plexmediaserver $PLEX_VERSION could not be installed from $PLEX_REPO (versions it offers are listed above)"
    fi
}

# The config volume may come from an earlier container whose plex user had another uid.
fix_ownership() {
    install -d -m 0755 "$PLEX_HOME"
    if [[ -n $(find "$PLEX_HOME" -xdev \! -user plex -print -quit 2>/dev/null) ]]; then
        log "Giving $PLEX_HOME to the plex user"
        chown -R plex:plex "$PLEX_HOME"
    fi
}

add_device_groups() {
    getent group render >/dev/null || groupadd --system render
    getent group video >/dev/null || groupadd --system video
    usermod -a -G render,video plex
}

# Runs gpu.sh when a GPU is attached and GPU drivers are "auto": userland, configure, then check
# (a failed check is reported but does not fail the install: Plex still transcodes in software).
setup_gpu() {
    local gpu=$PROVISION_DIR/gpu.sh
    if [[ $HWACCEL == none ]]; then
        log "GPU drivers: skipped (hardware transcoding set to 'none')"
        return 0
    fi
    if [[ -z $GPU_VENDOR ]]; then
        log "No GPU attached: Plex will transcode in software"
        return 0
    fi
    APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" userland
    APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" configure
    if ! APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" check; then
        warn "the GPU check failed (see above); Plex falls back to software transcoding"
    fi
}

wait_for_plex() {
    local i
    log "Waiting for Plex Media Server on port 32400"
    for i in $(seq 1 90); do
        if curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:32400/identity 2>/dev/null; then
            log "Plex Media Server answers"
            return 0
        fi
        if ((i % 15 == 0)); then log "still waiting ($((i * 2))s)"; fi
        sleep 2
    done
    journalctl -u plexmediaserver --no-pager -n 40 >&2 || true
    die "Plex Media Server did not answer within 180 seconds"
}

# Sets attributes of <Preferences .../>; every other attribute is kept. Arguments: NAME=VALUE
# pairs whose values need no XML escaping. Plex must be stopped. The file is left with mode 0600:
# it holds the server's plex.tv token once the server is claimed.
set_prefs() {
    local kv owner mode=0600 tmp
    owner=$(stat -c %u:%g "$PREFS")
    tmp=$(mktemp "$PREFS_DIR/.Preferences.xml.XXXXXX")
    cat "$PREFS" >"$tmp"
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

pref() { sed -n "s/.*[[:space:]]$1=\"\\([^\"]*\\)\".*/\\1/p" "$PREFS" | head -n 1; }

# Turns a claim token (https://www.plex.tv/claim, valid for 4 minutes) into the server's
# plex.tv token, unless the server is claimed already. The claim token only travels in a private
# curl config file, never on a command line; the answer is never printed.
claim_server() {
    local client cfg answer token
    [[ -n $PLEX_CLAIM_TOKEN ]] || return 0
    if [[ $PLEX_CLAIM_TOKEN != claim-* ]]; then
        warn "the claim token does not start with 'claim-'; skipped (get one at https://www.plex.tv/claim)"
        return 0
    fi
    if [[ -n $(pref PlexOnlineToken) ]]; then
        log "The server is already claimed; the claim token is not needed"
        return 0
    fi
    client=$(pref ProcessedMachineIdentifier)
    if [[ -z $client ]]; then
        warn "Preferences.xml has no ProcessedMachineIdentifier yet; claim the server in the web app"
        return 0
    fi
    cfg=$(mktemp)
    chmod 0600 "$cfg"
    printf 'url = "https://plex.tv/api/claim/exchange?token=%s"\n' "$PLEX_CLAIM_TOKEN" >"$cfg"
    answer=$(curl -fsS --max-time 30 -X POST -K "$cfg" \
        -H "X-Plex-Client-Identifier: $client" -H 'X-Plex-Product: Plex Media Server' \
        -H 'X-Plex-Version: 1.1' -H 'X-Plex-Provides: server' -H 'X-Plex-Platform: Linux' \
        -H 'X-Plex-Platform-Version: 1.0' -H 'X-Plex-Device-Name: PlexMediaServer' \
        -H 'X-Plex-Device: Linux' 2>/dev/null) || answer=""
    rm -f "$cfg"
    token=$(printf '%s' "$answer" | sed -n 's/.*<authentication-token>\([^<]*\)<\/authentication-token>.*/\1/p' | head -n 1)
    if [[ ! $token =~ ^[A-Za-z0-9_-]+$ ]]; then
        warn "plex.tv did not accept the claim token (they expire after 4 minutes); claim the server in the web app"
        return 0
    fi
    set_prefs "PlexOnlineToken=$token"
    chmod 0600 "$PREFS"
    log "The server is claimed for your plex.tv account"
}

# Applies the server name and the claim token; Plex writes Preferences.xml on its first start
# and must be stopped while the file changes.
apply_settings() {
    local i
    for i in $(seq 1 60); do
        [[ -s $PREFS ]] && break
        sleep 1
    done
    [[ -s $PREFS ]] || die "$PREFS was not created by Plex"
    # Plex's plex.tv token lives here once the server is claimed.
    chmod 0600 "$PREFS"
    if [[ -z $PLEX_SERVER_NAME || $(pref FriendlyName) == "$PLEX_SERVER_NAME" ]] &&
        { [[ -z $PLEX_CLAIM_TOKEN ]] || [[ -n $(pref PlexOnlineToken) ]]; }; then
        log "Server name and claim are up to date"
        return 0
    fi
    systemctl stop plexmediaserver
    if [[ -n $PLEX_SERVER_NAME ]]; then
        set_prefs "FriendlyName=$PLEX_SERVER_NAME"
        log "Server name set to '$PLEX_SERVER_NAME'"
    fi
    claim_server
    systemctl start plexmediaserver
    wait_for_plex
}
