#!/usr/bin/env bash
# Shared helpers for the postgresql scripts. Sourced, not run. Settings come only from the
# environment declared in app.yml. Everything is installed from Debian's own archive.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8

DATA_ROOT=/var/lib/postgresql
CLUSTER=main
# A copy of /etc/postgresql kept on the data volume, so a reinstall that finds the cluster there
# also gets its configuration back (Debian keeps the two apart).
CONFIG_COPY=$DATA_ROOT/.appstore-config
HBA_BEGIN='# BEGIN PVE App Store (app postgresql): rewritten on install, upgrade and reconfigure'
HBA_END='# END PVE App Store'

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

apt_install() {
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
}

# Number inputs may arrive as "5432" or "5432.0".
normalize_port() {
    local raw=${1%.0}
    if [[ ! $raw =~ ^[0-9]{1,5}$ ]] || ((10#$raw < 1 || 10#$raw > 65535)); then
        die "invalid port '$1'"
    fi
    printf '%s' "$((10#$raw))"
}

# Splits the allowed networks on commas and spaces into NETWORKS and checks each CIDR.
parse_networks() {
    local item addr bits
    NETWORKS=()
    for item in ${DB_ALLOWED_NETWORKS//,/ }; do
        [[ $item =~ ^([0-9A-Fa-f:.]+)/([0-9]{1,3})$ ]] || die "'$item' is not a network in CIDR form"
        addr=${BASH_REMATCH[1]}
        bits=$((10#${BASH_REMATCH[2]}))
        if [[ $addr == *:* ]]; then
            ((bits <= 128)) || die "'$item': an IPv6 prefix is at most 128"
        else
            [[ $addr =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "'$item' is not an IPv4 network"
            ((bits <= 32)) || die "'$item': an IPv4 prefix is at most 32"
        fi
        NETWORKS+=("$addr/$bits")
    done
    ((${#NETWORKS[@]} > 0)) || die "DB_ALLOWED_NETWORKS names no network"
}

# Checks the variables a script needs; call with the names that must be set.
require_env() {
    local name
    for name in "$@"; do
        [[ -n ${!name:-} ]] || die "environment variable $name is not set (see provision.env in app.yml)"
    done
    for name in DB_NAME DB_USER; do
        if [[ -n ${!name:-} && ! ${!name} =~ ^[a-z_][a-z0-9_]{0,62}$ ]]; then
            die "$name must match ^[a-z_][a-z0-9_]{0,62}\$"
        fi
    done
    if [[ -n ${DB_USER:-} ]]; then
        [[ $DB_USER != postgres && $DB_USER != pg_* ]] || die "DB_USER must not be 'postgres' or start with 'pg_'"
    fi
    if [[ -n ${DB_PASSWORD:-} ]]; then
        ((${#DB_PASSWORD} >= 8 && ${#DB_PASSWORD} <= 128)) || die "DB_PASSWORD must be 8 to 128 characters"
        [[ $DB_PASSWORD != *[$'\r\n']* ]] || die "DB_PASSWORD must be a single line"
    fi
    [[ -z ${DB_PORT:-} ]] || DB_PORT=$(normalize_port "$DB_PORT")
    [[ -z ${DB_ALLOWED_NETWORKS:-} ]] || parse_networks
    return 0
}

# The major version Debian's "postgresql" package brought (17 in Debian 13).
detect_major() {
    PG_MAJOR=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
        sed -E 's#^/usr/lib/postgresql/([0-9]+)/bin/postgres$#\1#' | sort -n | tail -n 1)
    [[ -n $PG_MAJOR ]] || die "no PostgreSQL server found under /usr/lib/postgresql"
    PG_CONF_DIR=/etc/postgresql/$PG_MAJOR/$CLUSTER
    PG_DATA=$DATA_ROOT/$PG_MAJOR/$CLUSTER
    PG_SERVICE=postgresql@$PG_MAJOR-$CLUSTER
}

# The volume may be new (root-owned, with lost+found) or hold a cluster from an earlier container
# whose postgres user had another uid. Needs the postgres user (postgresql-common makes it).
prepare_data() {
    install -d -m 0755 "$DATA_ROOT"
    chown -R postgres:postgres "$DATA_ROOT"
    if [[ -d $DATA_ROOT/lost+found ]]; then
        chown root:root "$DATA_ROOT/lost+found"
    fi
}

# On a reinstall the volume holds a cluster whose configuration went with the old container: put
# the saved copy back before the server package is configured, so Debian's scripts find the
# cluster as it was (and create no new one). Needs the postgres user.
restore_config_copy() {
    local conf dir
    [[ -d $CONFIG_COPY ]] || return 0
    for conf in "$CONFIG_COPY"/*/*/postgresql.conf; do
        [[ -f $conf ]] || continue
        dir=${conf#"$CONFIG_COPY"/}
        dir=${dir%/postgresql.conf}
        if [[ ! -e /etc/postgresql/$dir/postgresql.conf && -f $DATA_ROOT/$dir/PG_VERSION ]]; then
            install -d -o postgres -g postgres -m 0755 "/etc/postgresql/${dir%/*}"
            cp -a "$CONFIG_COPY/$dir" "/etc/postgresql/${dir%/*}/"
            chown -R postgres:postgres "/etc/postgresql/$dir"
            log "Restored the configuration of cluster ${dir} from the data volume"
        fi
    done
}

# Refreshes the copy of /etc/postgresql on the volume.
save_config_copy() {
    [[ -d /etc/postgresql && -d $DATA_ROOT ]] || return 0
    rm -rf "$CONFIG_COPY.new"
    cp -a /etc/postgresql "$CONFIG_COPY.new"
    rm -rf "$CONFIG_COPY"
    mv "$CONFIG_COPY.new" "$CONFIG_COPY"
}

# Debian's postgresql-17 creates the cluster "main" when it is first configured, unless a cluster
# configuration exists (a restored copy). What is left: a cluster on the volume without any saved
# configuration. pg_createcluster adopts a data directory only with configuration files inside it,
# so it gets Debian's defaults there first.
ensure_cluster() {
    if [[ -f $PG_CONF_DIR/postgresql.conf ]]; then
        log "Cluster ${PG_MAJOR}/${CLUSTER} is configured (data in ${PG_DATA})"
        return 0
    fi
    if [[ -f $PG_DATA/PG_VERSION ]]; then
        log "Adopting the existing cluster in ${PG_DATA} with a default configuration"
        install -o postgres -g postgres -m 0644 "/usr/share/postgresql/${PG_MAJOR}/postgresql.conf.sample" \
            "$PG_DATA/postgresql.conf"
        printf "\ninclude_dir = 'conf.d'\n" >>"$PG_DATA/postgresql.conf"
        install -o postgres -g postgres -m 0640 "/usr/share/postgresql/${PG_MAJOR}/pg_ident.conf.sample" \
            "$PG_DATA/pg_ident.conf"
        install -o postgres -g postgres -m 0640 /dev/null "$PG_DATA/pg_hba.conf"
        cat >"$PG_DATA/pg_hba.conf" <<'HBA'
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     peer
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
HBA
    else
        log "Creating cluster ${PG_MAJOR}/${CLUSTER} in ${PG_DATA}"
    fi
    pg_createcluster -u postgres "$PG_MAJOR" "$CLUSTER"
}

# Listen on the network with the chosen port; only scram-sha-256 passwords are stored.
write_config() {
    local tmp net
    # The port goes into postgresql.conf itself, where pg_lsclusters and psql's wrapper look.
    pg_conftool "$PG_MAJOR" "$CLUSTER" set port "$DB_PORT"
    install -d -o postgres -g postgres -m 0755 "$PG_CONF_DIR/conf.d"
    tmp=$(mktemp "$PG_CONF_DIR/conf.d/.appstore.XXXXXX")
    cat >"$tmp" <<CONF
# Managed by PVE App Store (app postgresql): rewritten on install, upgrade and reconfigure.
# Put your own settings in another file in this directory.
listen_addresses = '*'
password_encryption = 'scram-sha-256'
CONF
    chown postgres:postgres "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$PG_CONF_DIR/conf.d/50-appstore.conf"

    # pg_hba.conf: Debian's lines stay as they are; our block at the end lets the allowed
    # networks log in with a password.
    tmp=$(mktemp "$PG_CONF_DIR/.pg_hba.XXXXXX")
    awk -v b="$HBA_BEGIN" -v e="$HBA_END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' \
        "$PG_CONF_DIR/pg_hba.conf" >"$tmp"
    {
        printf '%s\n' "$HBA_BEGIN"
        for net in "${NETWORKS[@]}"; do
            printf 'host    all    all    %-43s scram-sha-256\n' "$net"
        done
        printf '%s\n' "$HBA_END"
    } >>"$tmp"
    chown postgres:postgres "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$PG_CONF_DIR/pg_hba.conf"
    log "Configured port ${DB_PORT}, password logins from ${NETWORKS[*]}"
}

# psql as the postgres superuser over the local socket, reading SQL from stdin.
psql_admin() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$DB_PORT" -d postgres "$@")
}

wait_for_postgres() {
    local i
    log "Waiting for PostgreSQL on port ${DB_PORT}"
    for i in $(seq 1 60); do
        if psql_admin -Atc 'SELECT 1' 2>/dev/null | grep -qx 1; then
            log "PostgreSQL answers (after ${i}s)"
            return 0
        fi
        sleep 1
    done
    journalctl -u "$PG_SERVICE" --no-pager -n 30 >&2 || true
    tail -n 30 "/var/log/postgresql/postgresql-${PG_MAJOR}-${CLUSTER}.log" >&2 2>/dev/null || true
    die "PostgreSQL did not answer on port ${DB_PORT} within 60 seconds"
}

# Creates the role and the database when they are missing and (re)sets the role's password. psql
# takes every value from the environment (\getenv), so the password is in no command line and no
# generated SQL text.
apply_role_and_database() {
    psql_admin <<'SQL'
\getenv role DB_USER
\getenv db DB_NAME
\getenv pw DB_PASSWORD
SET password_encryption = 'scram-sha-256';
SELECT format('CREATE ROLE %I LOGIN', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
SQL
    log "Role '${DB_USER}' owns database '${DB_NAME}'; its password is set"
}

# Runs SELECT 1 as the app's role over TCP with its password. The password reaches libpq through
# a private passfile, never a command line. Returns non-zero on failure.
check_login() {
    local dir out pw
    dir=$(mktemp -d)
    chmod 0700 "$dir"
    pw=${DB_PASSWORD//\\/\\\\}
    pw=${pw//:/\\:}
    (
        umask 077
        printf '127.0.0.1:%s:%s:%s:%s\n' "$DB_PORT" "$DB_NAME" "$DB_USER" "$pw" >"$dir/pgpass"
    )
    out=$(PGPASSFILE=$dir/pgpass PGCONNECT_TIMEOUT=5 psql -X -w -Atq -h 127.0.0.1 -p "$DB_PORT" \
        -U "$DB_USER" -d "$DB_NAME" -c 'SELECT 1' 2>&1) || true
    rm -rf "$dir"
    if [[ $out != 1 ]]; then
        printf 'SELECT 1 as %s over TCP failed: %s\n' "$DB_USER" "$out" >&2
        return 1
    fi
    return 0
}
