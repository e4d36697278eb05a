#!/usr/bin/env bash
# Shared helpers for the samba scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

SMB_CONF=/etc/samba/smb.conf
SHARE_DIR=/srv/samba/share
# Marks the Unix account this app created, so an existing system account is never taken over.
USER_GECOS="PVE App Store Samba user"
# smbclient is only for the health check and the login test.
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(samba smbclient)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${SAMBA_SHARE:-} && ! $SAMBA_SHARE =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$ ]]; then
        die "SAMBA_SHARE must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,31}\$"
    fi
    case ${SAMBA_SHARE,,} in
        global | homes | printers | print\$ | ipc\$) die "'$SAMBA_SHARE' is reserved by Samba; choose another share name" ;;
    esac
    if [[ -n ${SAMBA_USER:-} && ! $SAMBA_USER =~ ^[a-z][a-z0-9_-]{0,31}$ ]]; then
        die "SAMBA_USER must match ^[a-z][a-z0-9_-]{0,31}\$"
    fi
    if [[ -n ${SAMBA_WORKGROUP:-} && ! $SAMBA_WORKGROUP =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$ ]]; then
        die "SAMBA_WORKGROUP must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,14}\$"
    fi
    if [[ -n ${SAMBA_PASSWORD:-} ]]; then
        ((${#SAMBA_PASSWORD} >= 8)) || die "SAMBA_PASSWORD must be at least 8 characters"
        [[ $SAMBA_PASSWORD != *$'\n'* && $SAMBA_PASSWORD != *$'\r'* ]] ||
            die "SAMBA_PASSWORD must be a single line"
    fi
    case ${SAMBA_GUEST_READ:-false} in
        true | false) ;;
        *) die "SAMBA_GUEST_READ must be true or false" ;;
    esac
    return 0
}

# The Unix account behind the Samba user: a system user without a login shell. An account of
# that name that this app did not create (root, www-data, ...) is refused.
ensure_user() {
    local gecos
    if getent passwd "$SAMBA_USER" >/dev/null; then
        gecos=$(getent passwd "$SAMBA_USER" | cut -d: -f5)
        [[ $gecos == "$USER_GECOS" ]] ||
            die "a system account '$SAMBA_USER' already exists in the container; choose another username"
        return 0
    fi
    log "Creating the system user '$SAMBA_USER'"
    useradd --system --user-group --no-create-home --home-dir "$SHARE_DIR" \
        --shell /usr/sbin/nologin --comment "$USER_GECOS" "$SAMBA_USER"
}

# The volume may hold files from an earlier container whose user had another uid.
prepare_share() {
    install -d -m 0755 /srv/samba
    install -d -m 2775 "$SHARE_DIR"
    chown "$SAMBA_USER:$SAMBA_USER" "$SHARE_DIR"
    chmod 2775 "$SHARE_DIR"
    # Everything but the file system's own lost+found.
    find "$SHARE_DIR" -mindepth 1 -maxdepth 1 ! -name lost+found \
        -exec chown -R "$SAMBA_USER:$SAMBA_USER" {} +
}

write_config() {
    local tmp access
    # Keep the file Debian shipped, once.
    if [[ -f $SMB_CONF && ! -f $SMB_CONF.debian ]] && ! grep -q 'Managed by PVE App Store' "$SMB_CONF"; then
        cp -p "$SMB_CONF" "$SMB_CONF.debian"
    fi
    if [[ $SAMBA_GUEST_READ == true ]]; then
        access="   # Guests read; only ${SAMBA_USER} writes.
   guest ok = yes
   read only = yes
   write list = ${SAMBA_USER}"
    else
        access="   guest ok = no
   valid users = ${SAMBA_USER}
   read only = no"
    fi
    tmp=$(mktemp /etc/samba/.smb.conf.XXXXXX)
    cat >"$tmp" <<CONF
# Managed by PVE App Store (app samba): rewritten on install, upgrade and reconfigure.
# The file Debian shipped is kept as smb.conf.debian.

[global]
   workgroup = ${SAMBA_WORKGROUP}
   server string = %h file share
   server role = standalone server
   security = user
   passdb backend = tdbsam
   map to guest = $([[ $SAMBA_GUEST_READ == true ]] && echo 'bad user' || echo never)
   server min protocol = SMB2_10
   # SMB over TCP 445 only; no NetBIOS name service.
   disable netbios = yes
   smb ports = 445
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   usershare max shares = 0
   log file = /var/log/samba/log.%m
   max log size = 1000
   logging = file

[${SAMBA_SHARE}]
   comment = Files of ${SAMBA_USER}
   path = ${SHARE_DIR}
   browseable = yes
${access}
   force user = ${SAMBA_USER}
   force group = ${SAMBA_USER}
   create mask = 0664
   directory mask = 2775
   veto files = /lost+found/
CONF
    chmod 0644 "$tmp"
    testparm -s "$tmp" >/dev/null 2>&1 || {
        testparm -s "$tmp" >&2 || true
        rm -f "$tmp"
        die "Samba rejects the generated configuration"
    }
    mv -f "$tmp" "$SMB_CONF"
    log "Wrote $SMB_CONF (share '${SAMBA_SHARE}', guests may read: ${SAMBA_GUEST_READ})"
}

# Sets the Samba password of the user; the password reaches smbpasswd on stdin only.
set_password() {
    printf '%s\n%s\n' "$SAMBA_PASSWORD" "$SAMBA_PASSWORD" | smbpasswd -s -a "$SAMBA_USER" >/dev/null ||
        die "smbpasswd could not set the password of '$SAMBA_USER'"
    smbpasswd -e "$SAMBA_USER" >/dev/null
    log "Set the Samba password of '${SAMBA_USER}'"
}

# No NetBIOS: nmbd is not needed (and would only log errors with "disable netbios").
disable_nmbd() {
    if systemctl list-unit-files nmbd.service >/dev/null 2>&1; then
        systemctl disable --now --quiet nmbd.service 2>/dev/null || true
        systemctl mask --quiet nmbd.service 2>/dev/null || true
    fi
}

wait_for_smbd() {
    local i
    log "Waiting for smbd on port 445"
    for i in $(seq 1 30); do
        if (exec 3<>/dev/tcp/127.0.0.1/445) 2>/dev/null; then
            log "smbd accepts connections (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u smbd --no-pager -n 40 >&2 || true
    die "smbd did not listen on port 445 within 30 seconds"
}

# Logs in as the user and lists the share. The credentials go to smbclient in a private file,
# never on its command line.
check_login() {
    local auth out
    auth=$(mktemp)
    chmod 0600 "$auth"
    printf 'username = %s\npassword = %s\n' "$SAMBA_USER" "$SAMBA_PASSWORD" >"$auth"
    if ! out=$(smbclient "//127.0.0.1/${SAMBA_SHARE}" -A "$auth" -m SMB3 -c 'ls' 2>&1); then
        rm -f "$auth"
        printf '%s\n' "$out" | tail -n 5 >&2
        die "login as '${SAMBA_USER}' to the share '${SAMBA_SHARE}' failed"
    fi
    rm -f "$auth"
    log "Login as '${SAMBA_USER}' works; the share '${SAMBA_SHARE}' lists"
}
