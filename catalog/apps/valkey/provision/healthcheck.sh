#!/usr/bin/env bash
# One attempt: PING with the password must answer PONG.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env VALKEY_PASSWORD VALKEY_PORT

reply=$(vcli PING 2>&1) || true
if [[ $reply != PONG ]]; then
    echo "Valkey on port ${VALKEY_PORT} did not answer PING with the password: ${reply:-no reply}" >&2
    exit 1
fi
echo "Valkey on port ${VALKEY_PORT}: PING -> PONG"
