#!/usr/bin/env bash
# Shared helpers for the mariadb scripts. Sourced, not run. Settings come only from the environment
# declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

DATA_DIR=/var/lib/mysql
APP_CNF=/etc/mysql/mariadb.conf.d/60-appstore.cnf
# The account the local checks (and local programs) use; remote ones match DB_ALLOWED_HOSTS.
LOCAL_HOST=127.0.0.1
# shellcheck disable=SC2034 # used by the scripts that source this file
PACKAGES=(mariadb-server mariadb-client)

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "3306" or "3306.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    if [[ -n ${DB_NAME:-} && ! $DB_NAME =~ ^[A-Za-z0-9_]{1,64}$ ]]; then
        die "DB_NAME must match ^[A-Za-z0-9_]{1,64}\$"
    fi
    if [[ -n ${DB_USER:-} ]]; then
        [[ $DB_USER =~ ^[A-Za-z0-9_]{1,32}$ ]] || die "DB_USER must match ^[A-Za-z0-9_]{1,32}\$"
        case ${DB_USER,,} in
            root | mysql | public) die "DB_USER must not be '${DB_USER}'" ;;
        esac
    fi
    if [[ -n ${DB_PASSWORD:-} ]]; then
        ((${#DB_PASSWORD} >= 8 && ${#DB_PASSWORD} <= 128)) || die "DB_PASSWORD must be 8 to 128 characters"
        [[ $DB_PASSWORD != *[$'\r\n']* ]] || die "DB_PASSWORD must be a single line"
    fi
    if [[ -n ${DB_ALLOWED_HOSTS:-} && ! $DB_ALLOWED_HOSTS =~ ^[A-Za-z0-9.%_:/-]{1,255}$ ]]; then
        die "DB_ALLOWED_HOSTS must match ^[A-Za-z0-9.%_:/-]{1,255}\$"
    fi
    [[ -z ${DB_PORT:-} ]] || DB_PORT=$(normalize_port "$DB_PORT")
    return 0
}

# A string as an SQL literal (default sql_mode: backslash escapes are on).
sql_quote() {
    local s=${1//\\/\\\\}
    s=${s//\'/\\\'}
    printf "'%s'" "$s"
}

# The volume may be new (root-owned, with lost+found) or come from an earlier container; Debian's
# maintainer scripts also chown it, this covers re-runs and upgrades.
prepare_data() {
    if id mysql >/dev/null 2>&1; then
        install -d -m 0755 "$DATA_DIR"
        chown -R mysql:mysql "$DATA_DIR"
    fi
}

# Network settings in a file of our own; Debian's 50-server.cnf binds to 127.0.0.1 and is read
# first, so ours wins.
write_config() {
    local tmp
    tmp=$(mktemp /etc/mysql/mariadb.conf.d/.appstore.XXXXXX)
    cat >"$tmp" <<CONF
# Managed by PVE App Store (app mariadb): rewritten on install, upgrade and reconfigure.
# Put your own settings in another file in this directory (read in name order; later wins).
[mariadbd]
# Every IPv4 and IPv6 address.
bind-address = *
port = ${DB_PORT}
# Accounts match client addresses, not reverse-DNS names: no lookup delay on connect.
skip-name-resolve
character-set-server = utf8mb4

[client]
port = ${DB_PORT}
CONF
    chmod 0644 "$tmp"
    mv -f "$tmp" "$APP_CNF"
    log "Wrote $APP_CNF (port ${DB_PORT}, all addresses)"
}

# SQL as MariaDB's root over the local socket (unix_socket authentication), read from stdin.
sql_admin() {
    mariadb --protocol=socket -u root --batch --skip-column-names "$@"
}

wait_for_mariadb() {
    local i
    log "Waiting for MariaDB on port ${DB_PORT}"
    for i in $(seq 1 60); do
        # (No bare TCP probe: MariaDB logs each one as an aborted connection. The TCP login is
        # checked right after, as the user.)
        if [[ $(sql_admin -e 'SELECT @@port' 2>/dev/null) == "$DB_PORT" ]]; then
            log "MariaDB answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u mariadb --no-pager -n 40 >&2 || true
    die "MariaDB did not answer on port ${DB_PORT} within 60 seconds"
}

# Creates the database if it is missing and makes the user's accounts match the inputs: one for
# DB_ALLOWED_HOSTS, one for 127.0.0.1; other hosts of that user are dropped. Every account gets the
# (new) password and every privilege on the database. The SQL goes to mariadb on stdin, so the
# password is on no command line.
apply_user_and_database() {
    local user pw hosts host existing
    user=$(sql_quote "$DB_USER")
    pw=$(sql_quote "$DB_PASSWORD")
    hosts=("$DB_ALLOWED_HOSTS")
    [[ $DB_ALLOWED_HOSTS == "$LOCAL_HOST" ]] || hosts+=("$LOCAL_HOST")

    # Anonymous accounts would shadow the user for some client addresses.
    existing=$(sql_admin -e "SELECT Host FROM mysql.user WHERE User = ''")
    while IFS= read -r host; do
        [[ -n $host ]] || continue
        printf 'DROP USER IF EXISTS %s@%s;\n' "''" "$(sql_quote "$host")"
    done <<<"$existing" | sql_admin

    existing=$(sql_admin -e "SELECT Host FROM mysql.user WHERE User = ${user}")
    {
        # shellcheck disable=SC2016 # the backquotes quote an SQL identifier
        printf 'CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4;\n' "$DB_NAME"
        while IFS= read -r host; do
            [[ -n $host ]] || continue
            [[ " ${hosts[*]} " == *" $host "* ]] && continue
            printf 'DROP USER IF EXISTS %s@%s;\n' "$user" "$(sql_quote "$host")"
        done <<<"$existing"
        for host in "${hosts[@]}"; do
            host=$(sql_quote "$host")
            printf 'CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s;\n' "$user" "$host" "$pw"
            printf 'ALTER USER %s@%s IDENTIFIED BY %s;\n' "$user" "$host" "$pw"
            # shellcheck disable=SC2016 # the backquotes quote an SQL identifier
            printf 'GRANT ALL PRIVILEGES ON `%s`.* TO %s@%s;\n' "$DB_NAME" "$user" "$host"
        done
        printf 'FLUSH PRIVILEGES;\n'
    } | sql_admin
    log "User '${DB_USER}' (from ${hosts[*]}) has every privilege on '${DB_NAME}'; its password is set"
}

# SELECT 1 as the user over TCP with its password. The password reaches the client in MYSQL_PWD
# (its environment), never on a command line. (The client then warns that it skips its TLS
# certificate check, which it ties to a password it was given directly; for 127.0.0.1 that is
# fine, so only its standard output is compared.) Returns non-zero on failure.
check_login() {
    local out err
    err=$(mktemp)
    out=$(MYSQL_PWD=$DB_PASSWORD mariadb --protocol=TCP -h 127.0.0.1 -P "$DB_PORT" -u "$DB_USER" \
        --connect-timeout=5 --batch --skip-column-names -D "$DB_NAME" -e 'SELECT 1' 2>"$err") || true
    if [[ $out != 1 ]]; then
        printf 'SELECT 1 as %s over TCP failed: %s %s\n' "$DB_USER" "$out" "$(grep -v '^WARNING: option --ssl-verify' "$err" | head -n 3)" >&2
        rm -f "$err"
        return 1
    fi
    rm -f "$err"
    return 0
}
