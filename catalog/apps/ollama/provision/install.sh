#!/usr/bin/env bash
# Installs Ollama (pinned release from GitHub, verified against the release's sha256sum.txt) as a
# systemd service, with the NVIDIA userland or Ollama's ROCm libraries when the store attached a
# GPU. Safe to run again: every step checks or overwrites its result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
log "GPU from the store: ${GPU_VENDOR:-none}"

log "Installing prerequisites (curl, ca-certificates, zstd)"
apt-get update -q
apt_install curl ca-certificates zstd

ensure_user
install_ollama
prepare_models
write_unit
setup_gpu

log "Starting Ollama"
systemctl daemon-reload
systemctl enable --quiet ollama
systemctl restart ollama
wait_for_ollama
report_gpu
pull_model
log "Done. The API answers on http://<container-ip>:${APP_PORT}/ (OpenAI-compatible under /v1)."
