#!/usr/bin/env bash
# PVE App Store installer for a Proxmox VE node (9.x, or 8.4).
#
#   curl -fsSL <url>/install.sh | bash          # guided: questions on the terminal
#   bash install.sh --non-interactive [options] # automation: flags, or --answers FILE
#   bash install.sh --uninstall [--remove-containers]
#
# It sets up the host (the `appstore` user, the binaries, /etc/pve-appstore/{config.yml,helper.yml},
# /var/lib/pve-appstore, the helper's socket and the units) and PVE (the pool, the user
# appstore@pve, the roles PVEAppStore and PVEAppStoreTemplates, their ACLs and a privilege-separated
# API token whose secret goes to a root:appstore 0640 file). A second run upgrades in place and keeps
# the config. Every command runs with its arguments as separate words: no string is ever evaluated.
set -euo pipefail
umask 022

readonly ETC=/etc/pve-appstore
readonly STATE=/var/lib/pve-appstore
readonly LIBEXEC=/usr/lib/pve-appstore
readonly PVE_USER=appstore@pve
readonly TOKEN_NAME=store
readonly SERVICE_USER=appstore

usage() {
    cat <<'EOF'
Usage: install.sh [options]            install, or upgrade an existing install in place
       install.sh --uninstall [--remove-containers]

  --non-interactive        ask nothing; take flags, the answers file and defaults
  --answers FILE           KEY=value lines (POOL, CREATE_POOL, STORAGE, TEMPLATE_STORAGE, BACKUP_STORAGE, BRIDGE,
                           GPU_POLICY, GPU_ALLOWLIST, CORES, MEMORY_MB, DISK_GB, MAX_CORES, MAX_MEMORY_MB,
                           MAX_DISK_GB, BIND, PORT, PASSWORD, CATALOG_URL, CATALOG_BRANCH,
                           CATALOG_PATH, DOWNLOAD_TEMPLATES)
  --package FILE.deb       install this package
  --binaries DIR           install pve-appstore and pve-appstore-helper from DIR (a build), and
                           the units and sudoers from the directory this script is in (dist/)
  --dist DIR               where the units and sudoers are, when the script came on stdin
  --pool NAME              the store's pool (default appstore)
  --create-pool yes|no     create the pool when it is missing (default yes)
  --storage ID             storage for container disks (default: the first that holds containers)
  --template-storage ID    storage of container templates (default: the first with templates)
  --bridge NAME            network bridge (default vmbr0, else the first)
  --gpu-policy POLICY      none, opt-in (default) or allowlist
  --gpu-allowlist "ADDR ..."  with allowlist: the PCI addresses apps may use (default: every GPU)
  --cores N --memory-mb N --disk-gb N             defaults for apps that name none
  --max-cores N --max-memory-mb N --max-disk-gb N caps
  --bind ADDR --port N     the web UI's address (default 0.0.0.0:8088, HTTPS with the node's certificate)
  --password PW            the admin password (default: asked, or generated when not interactive)
  --catalog-url URL        a Git catalog (default: the reference catalog built into the store)
  --catalog-branch B --catalog-path DIR
  --download-templates yes|no   let the store download missing templates (default yes)
  --reconfigure            on a re-run, ask the questions again and rewrite the config
  --uninstall              remove the service, its files, the PVE user, token and roles
  --remove-containers      with --uninstall: also destroy the store's containers
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "==> $*"; }

# ---------------------------------------------------------------- answers

declare -A A=(
    [POOL]=appstore [CREATE_POOL]=yes [STORAGE]="" [TEMPLATE_STORAGE]="" [BACKUP_STORAGE]="" [BRIDGE]=""
    [GPU_POLICY]=opt-in [GPU_ALLOWLIST]="" [CORES]=1 [MEMORY_MB]=512 [DISK_GB]=4
    [MAX_CORES]=8 [MAX_MEMORY_MB]=16384 [MAX_DISK_GB]=256
    [BIND]=0.0.0.0 [PORT]=8088 [PASSWORD]="" [CATALOG_URL]="" [CATALOG_BRANCH]=main [CATALOG_PATH]=""
    [DOWNLOAD_TEMPLATES]=yes
)
declare -A GIVEN=()
INTERACTIVE=1 UNINSTALL=0 REMOVE_CONTAINERS=0 RECONFIGURE=0 PACKAGE='' BINARIES='' DIST=''

set_answer() {
    local key=$1 value=$2
    [[ -v "A[$key]" ]] || die "unknown setting $key"
    A[$key]=$value
    GIVEN[$key]=1
}

# KEY=value lines; '#' comments and blank lines skipped. Read as data, never sourced.
read_answers() {
    local file=$1 line key value
    [[ -r $file ]] || die "cannot read the answers file $file"
    while IFS= read -r line || [[ -n $line ]]; do
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        [[ $line =~ ^[[:space:]]*([A-Z_]+)=(.*)$ ]] || die "$file: not KEY=value: $line"
        key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
        value=${value%\"} value=${value#\"}
        set_answer "$key" "$value"
    done <"$file"
}

parse_args() {
    while (($#)); do
        local opt=$1
        case $opt in
            --non-interactive) INTERACTIVE=0 ;;
            --uninstall) UNINSTALL=1 ;;
            --remove-containers) REMOVE_CONTAINERS=1 ;;
            --reconfigure) RECONFIGURE=1 ;;
            -h | --help) usage; exit 0 ;;
            --answers | --package | --binaries | --dist | --pool | --create-pool | --storage | \
                --template-storage | --bridge | --gpu-policy | --gpu-allowlist | --cores | --memory-mb | --disk-gb | \
                --max-cores | --max-memory-mb | --max-disk-gb | --bind | --port | --password | \
                --catalog-url | --catalog-branch | --catalog-path | --download-templates)
                (($# >= 2)) || die "$opt needs a value"
                local value=$2
                shift
                case $opt in
                    --answers) read_answers "$value" ;;
                    --package) PACKAGE=$value ;;
                    --binaries) BINARIES=$value ;;
                    --dist) DIST=$value ;;
                    *)
                        local key=${opt#--}
                        key=${key//-/_}
                        set_answer "${key^^}" "$value"
                        ;;
                esac
                ;;
            *) die "unknown option $opt (see --help)" ;;
        esac
        shift
    done
}

# ---------------------------------------------------------------- questions

# Questions go to the terminal even when this script itself arrives on stdin (curl | bash).
TTY=/dev/tty
UI=plain
pick_ui() {
    ((INTERACTIVE)) || return 0
    { : <"$TTY"; } 2>/dev/null || die "no terminal to ask on; use --non-interactive with flags or --answers"
    if command -v whiptail >/dev/null; then UI=whiptail
    elif command -v dialog >/dev/null; then UI=dialog
    fi
}

# ask KEY "question" [choice...]: the answer, offered with its current value as default.
# whiptail and dialog draw on the terminal and write the answer to stderr, which is captured.
# shellcheck disable=SC2094 # the terminal is read and written on purpose
ask() {
    local key=$1 question=$2
    shift 2
    ((INTERACTIVE)) || return 0
    [[ -n ${GIVEN[$key]:-} ]] && return 0
    local current=${A[$key]} answer
    if [[ $UI != plain ]]; then
        if (($#)); then
            local items=() c
            for c in "$@"; do items+=("$c" ""); done
            answer=$("$UI" --title "PVE App Store" --default-item "$current" --menu "$question" 20 70 10 \
                "${items[@]}" 3>&1 1>&2 2>&3 <"$TTY" >"$TTY") || die "cancelled"
        else
            answer=$("$UI" --title "PVE App Store" --inputbox "$question" 10 70 "$current" \
                3>&1 1>&2 2>&3 <"$TTY" >"$TTY") || die "cancelled"
        fi
    else
        (($#)) && printf '  choices: %s\n' "$*" >"$TTY"
        printf '%s [%s]: ' "$question" "$current" >"$TTY"
        IFS= read -r answer <"$TTY" || die "cancelled"
        [[ -n $answer ]] || answer=$current
    fi
    A[$key]=$answer
}

# shellcheck disable=SC2094 # the terminal is read and written on purpose
ask_password() {
    ((INTERACTIVE)) || return 0
    [[ -n ${A[PASSWORD]} ]] && return 0
    local first second
    while :; do
        if [[ $UI != plain ]]; then
            first=$("$UI" --title "PVE App Store" --passwordbox "Admin password for the web UI (12 or more characters)" 10 70 \
                3>&1 1>&2 2>&3 <"$TTY" >"$TTY") || die "cancelled"
            second=$("$UI" --title "PVE App Store" --passwordbox "The same password again" 10 70 \
                3>&1 1>&2 2>&3 <"$TTY" >"$TTY") || die "cancelled"
        else
            printf 'Admin password for the web UI (12 or more characters): ' >"$TTY"
            IFS= read -rs first <"$TTY"; echo >"$TTY"
            printf 'The same password again: ' >"$TTY"
            IFS= read -rs second <"$TTY"; echo >"$TTY"
        fi
        if [[ $first != "$second" ]]; then echo "The two differ; again." >"$TTY"
        elif ((${#first} < 12)); then echo "Too short; 12 characters or more." >"$TTY"
        else A[PASSWORD]=$first; return 0
        fi
    done
}

# ---------------------------------------------------------------- the node

NODE='' RELEASE=''
detect_node() {
    command -v pveversion >/dev/null || die "this is not a Proxmox VE node (no pveversion)"
    if ! command -v pvesh >/dev/null || ! command -v pveum >/dev/null; then
        die "pvesh and pveum are missing"
    fi
    local version
    version=$(pveversion) || die "pveversion failed"
    [[ $version =~ pve-manager/([0-9]+)\.([0-9]+) ]] || die "cannot read the release from: $version"
    local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
    RELEASE=$major.$minor
    if ((major == 8 && minor < 4)) || ((major < 8)); then
        die "Proxmox VE $RELEASE is not supported: upgrade the node to 8.4 or 9.x first"
    fi
    ((major <= 9)) || say "Proxmox VE $RELEASE is newer than this installer knows; going on"
    local nodes
    nodes=$(pvesh get /nodes --output-format json) || die "pvesh get /nodes failed"
    NODE=$(json_values node <<<"$nodes" | grep -xF -- "$(hostname)" || true)
    [[ -n $NODE ]] || NODE=$(json_values node <<<"$nodes" | head -n1)
    [[ -n $NODE ]] || die "no node found by pvesh get /nodes"
    say "Proxmox VE $RELEASE on node $NODE"
}

# The values of "key" in compact JSON on stdin, one per line (pvesh's JSON; simple strings only).
json_values() {
    { grep -o "\"$1\":\"[^\"]*\"" || true; } | sed -e "s/^\"$1\":\"//" -e 's/"$//'
}

discover() {
    POOLS=$(pvesh get /pools --output-format json | json_values poolid || true)
    STORAGES=$(pvesh get "/nodes/$NODE/storage" --content rootdir --output-format json | json_values storage || true)
    TEMPLATE_STORAGES=$(pvesh get "/nodes/$NODE/storage" --content vztmpl --output-format json | json_values storage || true)
    BACKUP_STORAGES=$(pvesh get "/nodes/$NODE/storage" --content backup --output-format json | json_values storage || true)
    BRIDGES=$(pvesh get "/nodes/$NODE/network" --type any_bridge --output-format json | json_values iface || true)
    [[ -n $STORAGES ]] || die "no storage on $NODE can hold containers"
    [[ -n $BRIDGES ]] || die "no bridge on $NODE"
    [[ -n ${A[STORAGE]} ]] || A[STORAGE]=$(head -n1 <<<"$STORAGES")
    if [[ -z ${A[TEMPLATE_STORAGE]} ]]; then
        A[TEMPLATE_STORAGE]=$(grep -xF local <<<"$TEMPLATE_STORAGES" || head -n1 <<<"$TEMPLATE_STORAGES")
    fi
    if [[ -z ${A[BACKUP_STORAGE]} ]]; then
        A[BACKUP_STORAGE]=$(grep -xF local <<<"$BACKUP_STORAGES" || head -n1 <<<"$BACKUP_STORAGES" || true)
    fi
    if [[ -z ${A[BRIDGE]} ]]; then
        A[BRIDGE]=$(grep -xF vmbr0 <<<"$BRIDGES" || head -n1 <<<"$BRIDGES")
    fi
}

questions() {
    local pools
    pools=$(tr '\n' ' ' <<<"$POOLS")
    ask POOL "The pool for the store's containers (existing: ${pools:-none}; a new name is created)"
    # shellcheck disable=SC2086 # one choice per line of discovery
    ask STORAGE "Storage for container disks" $STORAGES
    # shellcheck disable=SC2086
    ask TEMPLATE_STORAGE "Storage of container templates" $TEMPLATE_STORAGES
    # shellcheck disable=SC2086
    ask BACKUP_STORAGE "Storage for the apps' backups (vzdump)" $BACKUP_STORAGES
    # shellcheck disable=SC2086
    ask BRIDGE "Network bridge for the apps" $BRIDGES
    ask DOWNLOAD_TEMPLATES "Download missing Debian templates when an app needs one?" yes no
    # Display controllers (PCI class 0x03); the store's own discovery names them once it runs.
    local gpus=() class
    for class in /sys/bus/pci/devices/*/class; do
        [[ -r $class && $(<"$class") == 0x03* ]] && gpus+=("$(basename "$(dirname "$class")")")
    done
    ask GPU_POLICY "GPUs for apps (${#gpus[@]} display devices found): who may attach them?" opt-in none allowlist
    if [[ ${A[GPU_POLICY]} == allowlist && -z ${A[GPU_ALLOWLIST]} ]]; then
        A[GPU_ALLOWLIST]=${gpus[*]}
        ask GPU_ALLOWLIST "PCI addresses of the GPUs apps may use (space separated)"
    fi
    ask CORES "Cores for an app that names none"
    ask MEMORY_MB "Memory (MiB) for an app that names none"
    ask DISK_GB "Root disk (GiB) for an app that names none"
    ask MAX_CORES "The most cores an app may get"
    ask MAX_MEMORY_MB "The most memory (MiB) an app may get"
    ask MAX_DISK_GB "The largest root disk (GiB) an app may get"
    ask BIND "Address the web UI listens on"
    ask PORT "Port of the web UI"
    ask CATALOG_URL "Catalog Git URL (empty: the reference catalog built into the store, works offline)"
    ask_password
}

check_answers() {
    local n
    for n in CORES MEMORY_MB DISK_GB MAX_CORES MAX_MEMORY_MB MAX_DISK_GB PORT; do
        [[ ${A[$n]} =~ ^[0-9]+$ ]] || die "${n,,}: '${A[$n]}' is not a whole number"
    done
    [[ ${A[POOL]} =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ ]] || die "pool: '${A[POOL]}' is not a PVE pool id"
    grep -qxF -- "${A[STORAGE]}" <<<"$STORAGES" || die "storage: '${A[STORAGE]}' cannot hold containers (usable: $(tr '\n' ' ' <<<"$STORAGES"))"
    if [[ -n ${A[BACKUP_STORAGE]} ]]; then
        grep -qxF -- "${A[BACKUP_STORAGE]}" <<<"$BACKUP_STORAGES" || die "backup storage: '${A[BACKUP_STORAGE]}' cannot hold backups (usable: $(tr '\n' ' ' <<<"$BACKUP_STORAGES"))"
    fi
    grep -qxF -- "${A[BRIDGE]}" <<<"$BRIDGES" || die "bridge: '${A[BRIDGE]}' is not a bridge of $NODE"
    case ${A[GPU_POLICY]} in none | opt-in | allowlist) ;; *) die "gpu-policy: none, opt-in or allowlist" ;; esac
    local addr
    for addr in ${A[GPU_ALLOWLIST]}; do
        [[ $addr =~ ^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || die "gpu-allowlist: '$addr' is not a PCI address like 0000:01:00.0"
    done
    if [[ ${A[GPU_POLICY]} == allowlist && -z ${A[GPU_ALLOWLIST]// /} ]]; then
        die "gpu-allowlist: the allowlist policy needs at least one PCI address (pve-appstore gpus lists them)"
    fi
    case ${A[DOWNLOAD_TEMPLATES]} in yes | no) ;; *) die "download-templates: yes or no" ;; esac
    case ${A[CREATE_POOL]} in yes | no) ;; *) die "create-pool: yes or no" ;; esac
    if [[ -z ${A[PASSWORD]} ]]; then
        A[PASSWORD]=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
        GENERATED_PASSWORD=1
    fi
    ((${#A[PASSWORD]} >= 12)) || die "password: 12 characters or more"
}

# ---------------------------------------------------------------- host

install_files() {
    if [[ -n $PACKAGE ]]; then
        say "installing the package $PACKAGE"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$(realpath "$PACKAGE")" >/dev/null
        return
    fi
    [[ -n $BINARIES ]] || die "give --package FILE.deb or --binaries DIR"
    say "installing the binaries from $BINARIES"
    ensure_service_user
    install -d -m 0755 "$LIBEXEC" /usr/share/doc/pve-appstore
    install -m 0755 "$BINARIES/pve-appstore" /usr/bin/pve-appstore
    install -m 0755 "$BINARIES/pve-appstore-helper" "$LIBEXEC/pve-appstore-helper"
    local dist=$DIST
    if [[ -z $dist && -n ${BASH_SOURCE[0]:-} && -f ${BASH_SOURCE[0]} ]]; then
        dist=$(dirname "$(realpath "${BASH_SOURCE[0]}")")
    fi
    [[ -d $dist/systemd ]] || die "--binaries needs the units and sudoers: run this script from its dist/ directory, or give --dist DIR"
    install -m 0644 "$dist/systemd/pve-appstore.service" /etc/systemd/system/
    install -m 0644 "$dist/systemd/pve-appstore-helper.socket" /etc/systemd/system/
    install -m 0644 "$dist/systemd/pve-appstore-helper@.service" /etc/systemd/system/
    install -m 0644 "$dist/helper.yml.example" /usr/share/doc/pve-appstore/
    install -m 0440 "$dist/sudoers" /etc/sudoers.d/pve-appstore
    if command -v visudo >/dev/null; then
        visudo -cqf /etc/sudoers.d/pve-appstore || die "the sudoers file does not check"
    fi
}

ensure_service_user() {
    getent group "$SERVICE_USER" >/dev/null || groupadd --system "$SERVICE_USER"
    getent passwd "$SERVICE_USER" >/dev/null ||
        useradd --system --gid "$SERVICE_USER" --home-dir "$STATE" --no-create-home \
            --shell /usr/sbin/nologin --comment "PVE App Store" "$SERVICE_USER"
}

# ---------------------------------------------------------------- PVE

pveum_quiet() { pveum "$@" >/dev/null; }

setup_pve() {
    if ! grep -qxF -- "${A[POOL]}" <<<"$POOLS"; then
        [[ ${A[CREATE_POOL]} == yes ]] || die "pool '${A[POOL]}' does not exist (and --create-pool no)"
        say "creating the pool ${A[POOL]}"
        pveum_quiet pool add "${A[POOL]}" --comment "PVE App Store apps"
    fi
    if ! pveum user list --output-format json | json_values userid | grep -qxF "$PVE_USER"; then
        say "creating the PVE user $PVE_USER"
        pveum_quiet user add "$PVE_USER" --comment "PVE App Store service"
    fi
    local download=()
    [[ ${A[DOWNLOAD_TEMPLATES]} == yes ]] && download=(--download-templates)
    local backups=()
    [[ -n ${A[BACKUP_STORAGE]} ]] && backups=(--backup-storage "${A[BACKUP_STORAGE]}")
    local plan
    plan=$(pve-appstore pve-grants --pool "${A[POOL]}" --storage "${A[STORAGE]}" \
        --template-storage "${A[TEMPLATE_STORAGE]}" --bridge "${A[BRIDGE]}" "${download[@]}" "${backups[@]}")
    local existing kind name what
    existing=$(pveum role list --output-format json | json_values roleid)
    while read -r kind name what; do
        case $kind in
            role)
                if grep -qxF "$name" <<<"$existing"; then
                    pveum_quiet role modify "$name" --privs "$what"
                else
                    say "creating the role $name"
                    pveum_quiet role add "$name" --privs "$what"
                fi
                ;;
        esac
    done <<<"$plan"
    ensure_token
    while read -r kind name what; do
        [[ $kind == acl ]] || continue
        # A privilege-separated token has what both it and its user are granted.
        pveum_quiet acl modify "$name" --users "$PVE_USER" --tokens "$PVE_USER!$TOKEN_NAME" --roles "$what"
    done <<<"$plan"
}

ensure_token() {
    local secret_file=$ETC/token
    if [[ -s $secret_file ]] && pveum user token list "$PVE_USER" --output-format json | json_values tokenid | grep -qxF "$TOKEN_NAME"; then
        return 0
    fi
    pveum user token list "$PVE_USER" --output-format json | json_values tokenid | grep -qxF "$TOKEN_NAME" &&
        pveum_quiet user token remove "$PVE_USER" "$TOKEN_NAME"
    say "creating the API token $PVE_USER!$TOKEN_NAME"
    local out secret
    out=$(pveum user token add "$PVE_USER" "$TOKEN_NAME" --privsep 1 --comment "PVE App Store" --output-format json)
    secret=$(json_values value <<<"$out")
    [[ $secret =~ ^[0-9a-f-]{36}$ ]] || die "pveum did not return a token secret"
    install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC"
    # Written through a 0640 file from the start: the secret never sits world-readable.
    (umask 027 && printf '%s\n' "$secret" >"$secret_file.new")
    chown root:"$SERVICE_USER" "$secret_file.new"
    chmod 0640 "$secret_file.new"
    mv -f "$secret_file.new" "$secret_file"
}

# ---------------------------------------------------------------- config

allowlist_yaml() {
    local addr out=()
    for addr in ${A[GPU_ALLOWLIST]}; do out+=("\"$addr\""); done
    local IFS=,
    printf '%s' "${out[*]}"
}

yaml_string() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

write_configs() {
    install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC"
    install -d -m 0700 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE" "$STATE/jobs"
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" /var/log/pve-appstore
    # The API's certificate, pinned: the CA file in /etc/pve is root:www-data 0640, out of reach.
    local fingerprint
    fingerprint=$(openssl x509 -noout -fingerprint -sha256 -in /etc/pve/local/pve-ssl.pem | sed 's/^.*=//')
    [[ $fingerprint =~ ^([0-9A-F]{2}:){31}[0-9A-F]{2}$ ]] || die "cannot read the node certificate's fingerprint"
    # The web UI speaks HTTPS with the node's own certificate, copied where the service may read it.
    install -m 0644 /etc/pve/local/pve-ssl.pem "$ETC/web.pem"
    install -m 0640 -o root -g "$SERVICE_USER" /etc/pve/local/pve-ssl.key "$ETC/web.key"
    local catalog=""
    if [[ -n ${A[CATALOG_URL]} ]]; then
        catalog="catalog:
  url: $(yaml_string "${A[CATALOG_URL]}")
  branch: $(yaml_string "${A[CATALOG_BRANCH]}")
  path: $(yaml_string "${A[CATALOG_PATH]}")"
    else
        catalog="# catalog: the reference catalog built into the store (set url: to follow a Git catalog)"
    fi
    local downloads=false
    [[ ${A[DOWNLOAD_TEMPLATES]} == yes ]] && downloads=true
    local tmp=$ETC/config.yml.new
    cat >"$tmp" <<EOF
# PVE App Store, written by install.sh on $(date -u +%Y-%m-%d). \`pve-appstore doctor\` checks it.
node: $(yaml_string "$NODE")
pool: $(yaml_string "${A[POOL]}")
proxmox:
  api_url: "https://127.0.0.1:8006"
  token_id: "$PVE_USER!$TOKEN_NAME"
  token_secret_file: "$ETC/token"
  tls: { fingerprint: "$fingerprint" }
defaults:
  storage: $(yaml_string "${A[STORAGE]}")
  template_storage: $(yaml_string "${A[TEMPLATE_STORAGE]}")
  backup_storage: $(yaml_string "${A[BACKUP_STORAGE]}")
  bridge: $(yaml_string "${A[BRIDGE]}")
  cores: ${A[CORES]}
  memory_mb: ${A[MEMORY_MB]}
  disk_gb: ${A[DISK_GB]}
caps:
  max_cores: ${A[MAX_CORES]}
  max_memory_mb: ${A[MAX_MEMORY_MB]}
  max_disk_gb: ${A[MAX_DISK_GB]}
web:
  bind: $(yaml_string "${A[BIND]}")
  port: ${A[PORT]}
  auth: { mode: password }
  tls: { cert_file: "$ETC/web.pem", key_file: "$ETC/web.key" }
$catalog
gpu:
  policy: ${A[GPU_POLICY]}
  allowlist: [$(allowlist_yaml)]
jobs:
  download_templates: $downloads
paths:
  state_dir: "$STATE"
  log_dir: /var/log/pve-appstore
  helper_socket: /run/pve-appstore/helper.sock
EOF
    chown root:"$SERVICE_USER" "$tmp"
    chmod 0640 "$tmp"
    mv -f "$tmp" "$ETC/config.yml"
    tmp=$ETC/helper.yml.new
    cat >"$tmp" <<EOF
# The root helper's rules (see /usr/share/doc/pve-appstore/helper.yml.example). Only root reads it.
pool: $(yaml_string "${A[POOL]}")
allowed_gid: $(getent group "$SERVICE_USER" | cut -d: -f3)
job_root: "$STATE/jobs"
allowed_features: [nesting]
allowed_device_prefixes: [/dev/dri/, /dev/nvidia, /dev/kfd]
allow_privileged: false
EOF
    chmod 0600 "$tmp"
    mv -f "$tmp" "$ETC/helper.yml"
    # The service's own check before it starts.
    runuser -u "$SERVICE_USER" -- pve-appstore doctor --config "$ETC/config.yml" >/dev/null ||
        say "doctor reports problems (shown after the start)"
}

set_password() {
    printf '%s\n' "${A[PASSWORD]}" | pve-appstore passwd --config "$ETC/config.yml" >/dev/null
}

start_service() {
    systemctl daemon-reload
    systemctl enable --now pve-appstore-helper.socket >/dev/null
    systemctl enable pve-appstore.service >/dev/null
    systemctl restart pve-appstore.service
    local port scheme=https url i
    port=$(sed -n 's/^  port: \([0-9]*\)$/\1/p' "$ETC/config.yml")
    url="$scheme://127.0.0.1:$port/api/health"
    for ((i = 0; i < 60; i++)); do
        if curl -fsk --max-time 2 "$url" >/dev/null 2>&1; then
            local ip
            ip=$(hostname -I 2>/dev/null | cut -d' ' -f1)
            say "PVE App Store is running: $scheme://${ip:-127.0.0.1}:$port"
            if [[ -n ${GENERATED_PASSWORD:-} ]]; then
                say "log in with the generated admin password: ${A[PASSWORD]}"
                say "(change it with: pve-appstore passwd)"
            else
                say "log in with the admin password you chose"
            fi
            return 0
        fi
        sleep 1
    done
    pve-appstore doctor --config "$ETC/config.yml" || true
    die "the service did not answer on $url; see journalctl -u pve-appstore"
}

# ---------------------------------------------------------------- uninstall

uninstall() {
    say "stopping the service"
    systemctl disable --now pve-appstore.service pve-appstore-helper.socket >/dev/null 2>&1 || true
    if ((REMOVE_CONTAINERS)) && [[ -r $ETC/config.yml ]]; then
        local pool id
        pool=$(sed -n 's/^pool: "\(.*\)"$/\1/p' "$ETC/config.yml")
        for id in $(pvesh get "/pools/$pool" --output-format json | grep -o '"vmid":[0-9]*' | cut -d: -f2); do
            if grep -q '^tags:.*appstore-managed' "/etc/pve/lxc/$id.conf" 2>/dev/null; then
                say "destroying container $id"
                pct stop "$id" >/dev/null 2>&1 || true
                pct destroy "$id" --purge 1
            fi
        done
    fi
    say "removing the PVE user, its token and the roles"
    if pveum user list --output-format json | json_values userid | grep -qxF "$PVE_USER"; then
        pveum_quiet user delete "$PVE_USER"
    fi
    local role
    for role in PVEAppStore PVEAppStoreTemplates; do
        if pveum role list --output-format json | json_values roleid | grep -qxF "$role"; then
            pveum_quiet role delete "$role"
        fi
    done
    if dpkg-query -W -f='${Status}' pve-appstore 2>/dev/null | grep -q "ok installed"; then
        DEBIAN_FRONTEND=noninteractive apt-get remove -y pve-appstore >/dev/null
    fi
    rm -f /usr/bin/pve-appstore /etc/sudoers.d/pve-appstore \
        /etc/systemd/system/pve-appstore.service /etc/systemd/system/pve-appstore-helper.socket \
        /etc/systemd/system/pve-appstore-helper@.service
    rm -rf "$LIBEXEC" "$ETC"
    systemctl daemon-reload
    say "done; the store's data stays in $STATE and its containers in their pool$( ((REMOVE_CONTAINERS)) && echo " (destroyed)")"
}

# ---------------------------------------------------------------- main

main() {
    parse_args "$@"
    (($(id -u) == 0)) || die "run as root"
    if ((UNINSTALL)); then
        uninstall
        return
    fi
    detect_node
    if [[ -r $ETC/config.yml ]] && ((!RECONFIGURE)); then
        say "upgrading in place; the config stays (--reconfigure asks again)"
        install_files
        systemctl daemon-reload
        systemctl restart pve-appstore.service
        say "upgraded"
        return
    fi
    pick_ui
    discover
    questions
    check_answers
    install_files
    ensure_service_user
    setup_pve
    write_configs
    set_password
    start_service
}

main "$@"
