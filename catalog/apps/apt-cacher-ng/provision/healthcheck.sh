#!/usr/bin/env bash
# Exits 0 when apt-cacher-ng serves its report page on its port.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ACNG_PORT=$(normalize_port "${ACNG_PORT:-3142}")
if answers; then
    exit 0
fi
echo "apt-cacher-ng is not answering on port ${ACNG_PORT}" >&2
exit 1
