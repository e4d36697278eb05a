#!/usr/bin/env bash
# Runs before the container is destroyed: stops the proxy so the cache volume is left consistent.
# Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet apt-cacher-ng; then
    echo "==> Stopping apt-cacher-ng"
    systemctl stop apt-cacher-ng
else
    echo "==> apt-cacher-ng is not running"
fi
echo "==> The package cache in /var/cache/apt-cacher-ng was not touched"
