#!/usr/bin/env bash
# Runs before the container is destroyed: stops Calibre-Web so the library and the settings
# database are closed cleanly. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet calibre-web; then
    echo "==> Stopping Calibre-Web"
    systemctl stop calibre-web
else
    echo "==> Calibre-Web is not running"
fi
echo "==> The library in /srv/calibre-library and the settings in /var/lib/calibre-web were not touched"
