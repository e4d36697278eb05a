#!/usr/bin/env bash
# Runs before the container is destroyed: stops Transmission so it saves its state and closes the
# files on the downloads volume. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet transmission-daemon; then
    echo "==> Stopping transmission-daemon"
    systemctl stop transmission-daemon
else
    echo "==> transmission-daemon is not running"
fi
echo "==> The downloads in /var/lib/transmission-daemon/downloads were not touched"
