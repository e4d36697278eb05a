#!/usr/bin/env bash
# Runs before the container is destroyed: stops JupyterLab and its kernels so open notebooks are
# not written half-way. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet jupyterlab; then
    echo "==> Stopping JupyterLab"
    systemctl stop jupyterlab
else
    echo "==> JupyterLab is not running"
fi
echo "==> The notebooks in /var/lib/jupyter/notebooks were not touched"
