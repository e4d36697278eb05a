#!/usr/bin/env bash
# GPU sync, run by the store's "GPU sync" job after the host's GPU driver changed or a GPU came
# back (the store has attached the device nodes again and started the container). Brings the
# container in line with the host again: the GPU userland (NVIDIA: the libraries of exactly
# APPSTORE_NVIDIA_DRIVER_VERSION; AMD: Ollama's ROCm libraries of the installed release), the
# drop-in naming the device nodes as they are now, Ollama restarted (a running server only finds
# a GPU when it starts), and the GPU check. Every step is gpu.sh's, as install.sh and upgrade.sh
# run it; safe to run again: each step checks or overwrites its result. Fails when the GPU check
# fails, so the store does not record a userland that does not work.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
if [[ -z ${APPSTORE_GPU_VENDOR:-} ]]; then
    log "No GPU attached (APPSTORE_GPU_VENDOR is empty): nothing to sync; Ollama runs models on the CPU"
    exit 0
fi
if [[ $GPU_VENDOR == nvidia ]]; then
    log "GPU sync for Ollama: nvidia, host driver ${APPSTORE_NVIDIA_DRIVER_VERSION:-not passed by the store (read from /proc/driver/nvidia/version)}"
else
    log "GPU sync for Ollama: $GPU_VENDOR"
fi

gpu=$PROVISION_DIR/gpu.sh
ensure_user
log "Installing the $GPU_VENDOR userland (gpu.sh userland)"
# Without OLLAMA_VERSION, gpu.sh takes the installed Ollama release for the ROCm libraries.
APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" userland
log "Naming the GPU's device nodes for ollama.service (gpu.sh configure)"
APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" configure

log "Restarting Ollama"
systemctl daemon-reload
systemctl restart ollama
wait_for_ollama
report_gpu

log "Checking the GPU (gpu.sh check)"
if ! APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" check; then
    die "the GPU check failed (see above); Ollama runs models on the CPU until the GPU sync succeeds"
fi
log "GPU sync finished: Ollama uses the $GPU_VENDOR GPU"
