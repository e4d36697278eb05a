#!/usr/bin/env bash
# Runs before the container is destroyed: stops Ollama so no model download is cut off half
# written. Nothing is deleted; the models stay on their volume.
set -euo pipefail

if systemctl is-active --quiet ollama; then
    echo "==> Stopping Ollama"
    systemctl stop ollama
else
    echo "==> Ollama is not running"
fi
echo "==> The models in /usr/share/ollama/.ollama/models were not touched"
