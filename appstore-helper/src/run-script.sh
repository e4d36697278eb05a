#!/bin/bash
# Written by pve-appstore-helper into every container it delivers files to; runs one of the app's
# scripts: /bin/bash /opt/appstore/bin/run-script SCRIPT SECONDS
#
# Standard input carries what the script gets, so it never passes through the environment or the
# command line of a host process: NAME=value entries, each ended by a NUL byte, an empty entry, then
# the inputs as JSON. The inputs live in a private file under /run (a tmpfs: gone at the next boot
# whatever happens) only while the script runs. The script is stopped here, inside the container,
# after SECONDS (and killed 10 s later if it lingers), with its whole process group.
set -u
script=$1
limit=$2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
while IFS= read -r -d '' entry && [[ -n $entry ]]; do
    export -- "$entry"
done
umask 077
mkdir -p /run/appstore
inputs=$(mktemp /run/appstore/inputs.XXXXXX)
trap 'rm -f -- "$inputs"' EXIT
cat > "$inputs"
if [[ -s $inputs ]]; then
    export APPSTORE_INPUTS=$inputs
else
    rm -f -- "$inputs"
fi
umask 022
cd /opt/appstore/provision 2>/dev/null || cd /
timeout --kill-after=10 "$limit" /bin/bash "$script" </dev/null
