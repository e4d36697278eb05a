#!/usr/bin/env bash
# One attempt: a real DNS query (localhost. A, answered from Unbound's built-in local zone, so the
# check does not depend on the Internet) must return 127.0.0.1.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DNS_PORT

if ! answer=$(query_localhost); then
    echo "Unbound on port ${DNS_PORT} did not answer 'localhost. A' correctly: ${answer:-no answer}" >&2
    exit 1
fi
echo "Unbound on port ${DNS_PORT}: localhost. A -> ${answer}"
