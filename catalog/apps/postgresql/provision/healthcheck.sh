#!/usr/bin/env bash
# One attempt: SELECT 1 as the app's role over TCP with its password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_PORT

check_login || exit 1
echo "PostgreSQL on port ${DB_PORT}: SELECT 1 as '${DB_USER}' OK"
