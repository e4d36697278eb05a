#!/usr/bin/env bash
# One attempt: logs in to Samba as the share's user, checks that the share is listed and that
# its directory lists. The store retries on failure.
set -euo pipefail

share=${SAMBA_SHARE:?SAMBA_SHARE is not set}
user=${SAMBA_USER:?SAMBA_USER is not set}
: "${SAMBA_PASSWORD:?SAMBA_PASSWORD is not set}"

auth=$(mktemp)
trap 'rm -f "$auth"' EXIT
chmod 0600 "$auth"
printf 'username = %s\npassword = %s\n' "$user" "$SAMBA_PASSWORD" >"$auth"

if ! shares=$(timeout 10 smbclient -L //127.0.0.1 -A "$auth" -m SMB3 -g 2>/dev/null); then
    echo "Samba does not answer an authenticated share listing as '${user}'" >&2
    exit 1
fi
if ! awk -F'|' -v s="$share" '$1 == "Disk" && $2 == s { found = 1 } END { exit !found }' <<<"$shares"; then
    echo "Samba answers but does not list the share '${share}'" >&2
    exit 1
fi
if ! timeout 10 smbclient "//127.0.0.1/${share}" -A "$auth" -m SMB3 -c 'ls' >/dev/null 2>&1; then
    echo "The share '${share}' does not list as '${user}'" >&2
    exit 1
fi
echo "Samba lists the share '${share}' for '${user}'"
