#!/usr/bin/env bash
# Moves Ollama to the release this catalog entry pins (and the matching ROCm libraries), re-applies
# the settings and brings the GPU userland in line again (after a host NVIDIA driver update the
# container needs the matching libraries). The models volume is kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
apt-get update -q
apt_install curl ca-certificates zstd
ensure_user
install_ollama
prepare_models
write_unit
setup_gpu
systemctl daemon-reload
systemctl restart ollama
wait_for_ollama
report_gpu
log "Upgrade finished (Ollama $OLLAMA_VERSION)"
