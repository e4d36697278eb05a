#!/usr/bin/env bash
# Shared helpers for the ollama scripts. Sourced, not run. Settings come only from the environment
# that app.yml declares. Ollama comes from its GitHub release (pinned version), verified against
# the sha256sum.txt published with that release.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

# The pinned release; raise it (and the catalog version) to upgrade. gpu.sh's default matches.
OLLAMA_VERSION=0.32.15
OLLAMA_PREFIX=/usr/local
OLLAMA_BIN=$OLLAMA_PREFIX/bin/ollama
OLLAMA_LIB=$OLLAMA_PREFIX/lib/ollama
OLLAMA_HOME=/usr/share/ollama
OLLAMA_MODELS=$OLLAMA_HOME/.ollama/models
RELEASE_URL=https://github.com/ollama/ollama/releases/download/v$OLLAMA_VERSION
UNIT=/etc/systemd/system/ollama.service
PROVISION_DIR=$(dirname "${BASH_SOURCE[0]}")
GPU_DROPIN=/etc/systemd/system/ollama.service.d/appstore-gpu.conf

APP_KEEP_ALIVE=${APP_KEEP_ALIVE:-5m}
APP_ORIGINS=${APP_ORIGINS:-}
APP_PULL_MODEL=${APP_PULL_MODEL:-}
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

# Number inputs may arrive as "11434" or "11434.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1024 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

check_env() {
    APP_PORT=$(normalize_port "${APP_PORT:?APP_PORT is not set (see provision.env in app.yml)}")
    [[ $APP_KEEP_ALIVE =~ ^(-1|0|[0-9]{1,5}[smh]?)$ ]] ||
        die "APP_KEEP_ALIVE must be -1, 0 or a duration like 5m, 30s or 2h"
    [[ $APP_ORIGINS =~ ^[A-Za-z0-9*.:/,_-]{0,512}$ ]] ||
        die "APP_ORIGINS may only hold origins separated by commas (letters, digits, * . : / _ -)"
    [[ $APP_PULL_MODEL =~ ^([a-z0-9][a-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,64})?)?$ ]] ||
        die "APP_PULL_MODEL must be a model name such as llama3.2:1b"
    case $GPU_VENDOR in
        "" | nvidia | amd) ;;
        *) die "Ollama supports NVIDIA and AMD GPUs, not '$GPU_VENDOR'" ;;
    esac
    return 0
}

ensure_user() {
    if ! id -u ollama >/dev/null 2>&1; then
        getent group ollama >/dev/null || groupadd --system ollama
        useradd --system --gid ollama --home-dir "$OLLAMA_HOME" --no-create-home \
            --shell /usr/sbin/nologin ollama
    fi
    local g
    for g in render video; do
        if getent group "$g" >/dev/null; then usermod -a -G "$g" ollama; fi
    done
}

# The models volume is mounted at $OLLAMA_MODELS; it and its parents belong to ollama (the volume
# may come from an earlier container whose ollama user had another uid).
prepare_models() {
    install -d -m 0755 "$OLLAMA_HOME" "$OLLAMA_HOME/.ollama" "$OLLAMA_MODELS"
    chown ollama:ollama "$OLLAMA_HOME" "$OLLAMA_HOME/.ollama"
    if [[ -n $(find "$OLLAMA_MODELS" -xdev \! -user ollama -print -quit 2>/dev/null) ]]; then
        log "Giving the models in $OLLAMA_MODELS to the ollama user"
        chown -R ollama:ollama "$OLLAMA_MODELS"
    fi
}

# Downloads one asset of the pinned release into $2 and checks it against the release's
# sha256sum.txt.
fetch_release_asset() {
    local name=$1 dir=$2 expected
    curl -fsSL --retry 3 -o "$dir/sha256sum.txt" "$RELEASE_URL/sha256sum.txt" ||
        die "could not download $RELEASE_URL/sha256sum.txt"
    expected=$(awk -v f="$name" '$2 == f || $2 == "./" f || $2 == "*" f { print $1; exit }' "$dir/sha256sum.txt")
    [[ $expected =~ ^[0-9a-f]{64}$ ]] || die "no SHA-256 for $name in the release's sha256sum.txt"
    log "Downloading $RELEASE_URL/$name (large; this takes a while)"
    curl -fsSL --retry 3 -o "$dir/$name" "$RELEASE_URL/$name" || die "could not download $RELEASE_URL/$name"
    printf '%s  %s\n' "$expected" "$dir/$name" | sha256sum -c --quiet - ||
        die "$name does not match the release's published SHA-256"
    log "Checksum of $name verified"
}

# Ollama itself: bin/ollama and lib/ollama (CPU, CUDA and Vulkan runners) under /usr/local.
install_ollama() {
    local name=ollama-linux-amd64.tar.zst marker=$OLLAMA_LIB/.appstore-version dir
    [[ $(uname -m) == x86_64 ]] || die "this entry installs the x86_64 build of Ollama"
    if [[ -x $OLLAMA_BIN && -f $marker && $(cat "$marker") == "$OLLAMA_VERSION" ]]; then
        log "Ollama $OLLAMA_VERSION is already installed"
        return 0
    fi
    dir=$(mktemp -d /var/tmp/ollama-release.XXXXXX)
    fetch_release_asset "$name" "$dir"
    if systemctl is-active --quiet ollama 2>/dev/null; then systemctl stop ollama; fi
    # Libraries of an older release must not linger next to the new ones.
    rm -rf "$OLLAMA_LIB"
    log "Unpacking Ollama $OLLAMA_VERSION into $OLLAMA_PREFIX"
    zstd -dc "$dir/$name" | tar -xf - -C "$OLLAMA_PREFIX" --no-same-owner
    rm -rf "$dir"
    [[ -x $OLLAMA_BIN ]] || die "the release archive did not contain bin/ollama"
    printf '%s\n' "$OLLAMA_VERSION" >"$marker"
    log "Ollama $OLLAMA_VERSION installed"
}

write_unit() {
    local tmp
    tmp=$(mktemp "$UNIT.XXXXXX")
    {
        printf '%s\n' '# Managed by PVE App Store (app ollama): rewritten on install, upgrade and reconfigure.' \
            '[Unit]' 'Description=Ollama' 'After=network-online.target' 'Wants=network-online.target' '' \
            '[Service]' "ExecStart=$OLLAMA_BIN serve" 'User=ollama' 'Group=ollama' \
            'Restart=always' 'RestartSec=3' \
            "Environment=\"HOME=$OLLAMA_HOME\"" \
            "Environment=\"OLLAMA_HOST=0.0.0.0:$APP_PORT\"" \
            "Environment=\"OLLAMA_MODELS=$OLLAMA_MODELS\"" \
            "Environment=\"OLLAMA_KEEP_ALIVE=$APP_KEEP_ALIVE\""
        if [[ -n $APP_ORIGINS ]]; then printf 'Environment="OLLAMA_ORIGINS=%s"\n' "$APP_ORIGINS"; fi
        printf '%s\n' '' '[Install]' 'WantedBy=multi-user.target'
    } >"$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$UNIT"
    log "Wrote $UNIT (API on 0.0.0.0:$APP_PORT, models in $OLLAMA_MODELS)"
}

# Runs gpu.sh when a GPU is attached: userland, configure, then check (a failed check is
# reported but does not fail the install: Ollama still runs models on the CPU).
setup_gpu() {
    local gpu=$PROVISION_DIR/gpu.sh
    if [[ -z $GPU_VENDOR ]]; then
        log "No GPU attached: Ollama runs models on the CPU"
        return 0
    fi
    APPSTORE_GPU_VENDOR=$GPU_VENDOR OLLAMA_VERSION=$OLLAMA_VERSION bash "$gpu" userland
    APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" configure
    if ! APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" check; then
        warn "the GPU check failed (see above); Ollama will run models on the CPU"
    fi
}

wait_for_ollama() {
    local version
    log "Waiting for Ollama on port $APP_PORT"
    for _ in $(seq 1 60); do
        if version=$(curl -fsS --max-time 3 "http://127.0.0.1:$APP_PORT/api/version" 2>/dev/null); then
            log "Ollama answers: $version"
            return 0
        fi
        sleep 1
    done
    journalctl -u ollama --no-pager -n 40 >&2 || true
    die "Ollama did not answer on port $APP_PORT within 60 seconds"
}

# Downloads the model named in the inputs (once; the server keeps it in the models volume).
pull_model() {
    [[ -n $APP_PULL_MODEL ]] || return 0
    if curl -fsS --max-time 10 -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"model\": \"$APP_PULL_MODEL\"}" "http://127.0.0.1:$APP_PORT/api/show" 2>/dev/null; then
        log "Model $APP_PULL_MODEL is already there"
        return 0
    fi
    log "Pulling model $APP_PULL_MODEL from the Ollama library (can take long for large models)"
    if curl -fsS --max-time 3000 -o /dev/null -H 'Content-Type: application/json' \
        -d "{\"model\": \"$APP_PULL_MODEL\", \"stream\": false}" "http://127.0.0.1:$APP_PORT/api/pull"; then
        log "Model $APP_PULL_MODEL is ready"
    else
        warn "pulling $APP_PULL_MODEL failed; pull it later with: ollama pull $APP_PULL_MODEL"
    fi
}

# Reports where models will run, from the server's own discovery (best effort).
report_gpu() {
    local line
    line=$(journalctl -u ollama --no-pager -n 200 2>/dev/null | grep -E 'inference compute|no compatible GPUs' | tail -n 1 || true)
    if [[ -n $line ]]; then log "Ollama: ${line#*msg=}"; fi
}
