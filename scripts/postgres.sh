# shellcheck shell=bash
# shellcheck disable=SC2034  # GATEHOUSE_PG_* variables are read by the sourcing scripts
#
# PostgreSQL helpers for the Gatehouse dev/test scripts.
#
# Usage (from another bash script):
#
#     . "$ROOT/scripts/postgres.sh"
#     ensure_postgres      # exports DATABASE_URL
#     ...
#     stop_postgres        # stops the project-local cluster (never an external one)
#
# If DATABASE_URL is already set it is used as is. Otherwise a project-local
# cluster is created in <repo>/.local/pg (data in .local/pg/data, server log in
# .local/pg/log, unix socket in .local/pg) and started on
# 127.0.0.1:${GATEHOUSE_PG_PORT:-54329} with trust authentication, and
# DATABASE_URL=postgres://postgres@127.0.0.1:PORT/gatehouse is exported.
#
# PostgreSQL refuses to run as root: when run as root the server runs as the
# `postgres` system user (via runuser). If that user cannot reach the
# repository (e.g. it lives under /root), the cluster lives in
# /tmp/gatehouse-pg-<uid>-<hash of repo path> instead.
#
# Environment honoured:
#   DATABASE_URL           use this database instead of a project-local cluster
#   GATEHOUSE_PG_PORT      port of the project-local cluster (default 54329)
#   GATEHOUSE_PG_BINDIR    directory holding initdb/pg_ctl/postgres (default:
#                          highest /usr/lib/postgresql/*/bin, then $PATH)
#
# Variables set by ensure_postgres:
#   DATABASE_URL                 (exported)
#   GATEHOUSE_PG_EXTERNAL        1 if DATABASE_URL came from the caller, else 0
#   GATEHOUSE_PG_STARTED_BY_US   1 if this call started the local server, else 0
#   GATEHOUSE_PG_DIR             directory of the project-local cluster
#
# All progress messages go to stderr; nothing is written to stdout.

GATEHOUSE_ROOT="$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GATEHOUSE_PG_EXTERNAL=""      # set by ensure_postgres: 1 external, 0 local
GATEHOUSE_PG_STARTED_BY_US=0
GATEHOUSE_PG_DIR=""

_GH_PG_BINDIR=""
_GH_PG_RUN_USER=""    # empty: run as the current user
_GH_APT_UPDATED=0
_GH_PG_CONF_CHANGED=0
_GH_PG_OUR_URL=""

_pg_log() {
    printf 'postgres: %s\n' "$*" >&2
}

_pg_die() {
    printf 'postgres: error: %s\n' "$*" >&2
    return 1
}

# Run a command with root privileges (directly if root, else via sudo).
_pg_as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _pg_die "need root (or sudo) to run: $*"
    fi
}

# apt-get install the given packages (Debian/Ubuntu only).
_pg_apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        _pg_die "apt-get not found; please install: $* (or set DATABASE_URL)"
        return 1
    fi
    _pg_log "installing $* with apt-get"
    if [[ $_GH_APT_UPDATED -eq 0 ]]; then
        _pg_as_root env DEBIAN_FRONTEND=noninteractive apt-get update >&2 || return 1
        _GH_APT_UPDATED=1
    fi
    _pg_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}

_pg_is_bindir() {
    [[ -x $1/initdb && -x $1/pg_ctl && -x $1/postgres ]]
}

# Print the server bin dir (highest version first), or return 1.
_pg_find_bindir() {
    local d cmd
    if [[ -n ${GATEHOUSE_PG_BINDIR:-} ]]; then
        if _pg_is_bindir "$GATEHOUSE_PG_BINDIR"; then
            printf '%s\n' "$GATEHOUSE_PG_BINDIR"
            return 0
        fi
        _pg_die "GATEHOUSE_PG_BINDIR=$GATEHOUSE_PG_BINDIR has no initdb/pg_ctl/postgres"
        return 1
    fi
    # Debian/Ubuntu layout: /usr/lib/postgresql/<version>/bin, highest version first.
    while IFS= read -r d; do
        if _pg_is_bindir "$d"; then
            printf '%s\n' "$d"
            return 0
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null \
        | sort -t/ -k5,5Vr)
    # Non-Debian layouts (Fedora, Homebrew, ...): server binaries on $PATH.
    if cmd=$(command -v pg_ctl 2>/dev/null); then
        d=$(dirname "$(readlink -f "$cmd" 2>/dev/null || printf '%s' "$cmd")")
        if _pg_is_bindir "$d"; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    return 1
}

# Find a psql binary (bin dir first, then $PATH). Prints its path or returns 1.
_pg_find_psql() {
    local d
    if [[ -n $_GH_PG_BINDIR && -x $_GH_PG_BINDIR/psql ]]; then
        printf '%s\n' "$_GH_PG_BINDIR/psql"
        return 0
    fi
    if d=$(_pg_find_bindir 2>/dev/null) && [[ -x $d/psql ]]; then
        printf '%s\n' "$d/psql"
        return 0
    fi
    command -v psql 2>/dev/null
}

# Make sure server binaries exist (installing `postgresql` via apt if none).
_pg_ensure_binaries() {
    if _GH_PG_BINDIR=$(_pg_find_bindir); then
        return 0
    fi
    _pg_log "no PostgreSQL server binaries found"
    _pg_apt_install postgresql || return 1
    _GH_PG_BINDIR=$(_pg_find_bindir) || _pg_die "PostgreSQL server binaries still not found after install"
}

# Run a command as the user owning the cluster. Runs from / so an
# inaccessible current directory does not bother the postgres tools.
_pg_as_owner() {
    if [[ -n $_GH_PG_RUN_USER ]]; then
        (cd / && runuser -u "$_GH_PG_RUN_USER" -- "$@")
    else
        "$@"
    fi
}

_pg_hash() {
    if command -v sha256sum >/dev/null 2>&1; then
        printf '%s' "$1" | sha256sum | cut -c1-12
    else
        printf '%s' "$1" | cksum | cut -d' ' -f1
    fi
}

_pg_fallback_dir() {
    printf '/tmp/gatehouse-pg-%s-%s\n' "$(id -u)" "$(_pg_hash "$GATEHOUSE_ROOT")"
}

# Pick the OS user the server runs as (sets _GH_PG_RUN_USER).
_pg_pick_run_user() {
    local datadir=${1:-} owner
    _GH_PG_RUN_USER=""
    [[ $(id -u) -eq 0 ]] || return 0
    # An existing cluster keeps its owner (unless that is root, which cannot run it).
    if [[ -n $datadir && -f $datadir/PG_VERSION ]]; then
        owner=$(stat -c %U "$datadir" 2>/dev/null || true)
        if [[ -n $owner && $owner != root && $owner != UNKNOWN ]] && id -u "$owner" >/dev/null 2>&1; then
            _GH_PG_RUN_USER=$owner
            return 0
        fi
    fi
    if ! id -u postgres >/dev/null 2>&1; then
        _pg_die "running as root but there is no 'postgres' system user to run the server (install the postgresql package, or set DATABASE_URL)"
        return 1
    fi
    _GH_PG_RUN_USER=postgres
}

# Can the server user use <dir> (a cluster dir under the repo)? It must be
# able to traverse the repo root and every existing directory below it.
_pg_owner_can_use() {
    local dir=$1 saved=$_GH_PG_RUN_USER ok=0 p
    [[ $(id -u) -eq 0 ]] || return 0   # not root: the server runs as us
    _pg_pick_run_user "$dir/data" 2>/dev/null || { _GH_PG_RUN_USER=$saved; return 1; }
    if ! _pg_as_owner test -x "$GATEHOUSE_ROOT" 2>/dev/null; then
        ok=1
    else
        for p in "$GATEHOUSE_ROOT/.local" "$dir"; do
            # A not yet initialised cluster dir gets chown'ed to the server user.
            [[ $p == "$dir" && ! -f $dir/data/PG_VERSION ]] && continue
            if [[ -d $p ]] && ! _pg_as_owner test -x "$p" 2>/dev/null; then
                ok=1
                break
            fi
        done
    fi
    _GH_PG_RUN_USER=$saved
    return "$ok"
}

# Decide where the cluster lives (sets GATEHOUSE_PG_DIR and the server user),
# creating the directory when needed.
_pg_prepare_dir() {
    local local_dir=$GATEHOUSE_ROOT/.local/pg fallback fowner
    fallback=$(_pg_fallback_dir)

    if [[ -f $local_dir/data/PG_VERSION ]] || _pg_owner_can_use "$local_dir"; then
        GATEHOUSE_PG_DIR=$local_dir
    else
        GATEHOUSE_PG_DIR=$fallback
        _pg_log "user 'postgres' cannot access $GATEHOUSE_ROOT; using $fallback for the cluster instead of $local_dir"
    fi
    _pg_pick_run_user "$GATEHOUSE_PG_DIR/data" || return 1
    if [[ -n $_GH_PG_RUN_USER ]] && ! command -v runuser >/dev/null 2>&1; then
        _pg_die "runuser (util-linux) is needed to run PostgreSQL as '$_GH_PG_RUN_USER' when running as root"
        return 1
    fi

    if [[ $GATEHOUSE_PG_DIR == "$fallback" ]]; then
        if [[ -e $fallback && ! -O $fallback ]]; then
            fowner=$(stat -c %U "$fallback" 2>/dev/null || echo '?')
            if [[ $fowner != "$_GH_PG_RUN_USER" ]]; then
                _pg_die "$fallback exists but is owned by '$fowner'; remove it or set DATABASE_URL"
                return 1
            fi
        fi
        (umask 077 && mkdir -p "$fallback") || return 1
    else
        if [[ ! -d $GATEHOUSE_ROOT/.local ]]; then
            mkdir -m 755 "$GATEHOUSE_ROOT/.local" || return 1
        fi
        mkdir -p "$GATEHOUSE_PG_DIR" || return 1
    fi
    if [[ -n $_GH_PG_RUN_USER && ! -f $GATEHOUSE_PG_DIR/data/PG_VERSION ]]; then
        chown "$_GH_PG_RUN_USER:" "$GATEHOUSE_PG_DIR" || return 1
    fi
    chmod 700 "$GATEHOUSE_PG_DIR" 2>/dev/null || true
    if ! _pg_as_owner test -w "$GATEHOUSE_PG_DIR" -a -x "$GATEHOUSE_PG_DIR"; then
        _pg_die "user '${_GH_PG_RUN_USER:-$(id -un)}' cannot write to $GATEHOUSE_PG_DIR"
        return 1
    fi
}

_pg_pid_from_file() {
    local f=$1/postmaster.pid pid
    [[ -f $f ]] || return 1
    pid=$(head -n 1 "$f" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    printf '%s\n' "$pid"
}

# Is the server of <datadir> running? Guards against a stale postmaster.pid
# whose PID got reused by an unrelated process (common after a reboot or in
# containers).
_pg_server_running() {
    local datadir=$1 pid comm
    pid=$(_pg_pid_from_file "$datadir") || return 1
    if [[ -d /proc ]] && [[ -r /proc/self/comm ]]; then
        [[ -e /proc/$pid ]] || return 1
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        [[ $comm == postgres* || $comm == postmaster* ]] || return 1
        return 0
    fi
    _pg_as_owner "$_GH_PG_BINDIR/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

_pg_running_port() {
    sed -n '4p' "$1/postmaster.pid" 2>/dev/null || true
}

_pg_port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

_pg_socket_dir() {
    local port=$1
    # sun_path is ~107 bytes; without a usable socket dir postgres refuses to start.
    if (( ${#GATEHOUSE_PG_DIR} + ${#port} + 10 <= 100 )); then
        printf '%s\n' "$GATEHOUSE_PG_DIR"
    else
        printf '\n'
    fi
}

# (Re)write gatehouse.conf; sets _GH_PG_CONF_CHANGED=1 if it changed.
_pg_write_conf() {
    local datadir=$1 port=$2 sockdir conf new
    _GH_PG_CONF_CHANGED=0
    sockdir=$(_pg_socket_dir "$port")
    if [[ -z $sockdir ]]; then
        _pg_log "path $GATEHOUSE_PG_DIR is too long for a unix socket; TCP only"
    fi
    conf=$datadir/gatehouse.conf
    new=$(cat <<EOF
# Managed by scripts/postgres.sh (dev/test cluster: durability is off).
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
)
    if [[ -f $conf ]] && [[ $(cat "$conf") == "$new" ]]; then
        return 0
    fi
    printf '%s\n' "$new" >"$conf" || return 1
    if [[ -n $_GH_PG_RUN_USER ]]; then
        chown "$_GH_PG_RUN_USER:" "$conf" || return 1
    fi
    chmod 600 "$conf" || return 1
    if ! grep -q "^include_if_exists = 'gatehouse.conf'" "$datadir/postgresql.conf"; then
        printf "\n# Gatehouse dev/test settings\ninclude_if_exists = 'gatehouse.conf'\n" \
            >>"$datadir/postgresql.conf" || return 1
    fi
    _GH_PG_CONF_CHANGED=1
}

_pg_log_tail() {
    local logfile=$GATEHOUSE_PG_DIR/log
    if [[ -f $logfile ]]; then
        _pg_log "last lines of $logfile:"
        tail -n 30 "$logfile" >&2 || true
    fi
}

_pg_initdb() {
    local datadir=$1
    if [[ -e $datadir ]]; then
        _pg_log "removing incomplete cluster directory $datadir"
        rm -rf -- "$datadir"
    fi
    _pg_log "initialising cluster in $datadir ($("$_GH_PG_BINDIR/postgres" --version 2>/dev/null || echo postgres))"
    if ! _pg_as_owner "$_GH_PG_BINDIR/initdb" -D "$datadir" -U postgres --auth=trust \
            -E UTF8 --no-locale --no-sync >"$GATEHOUSE_PG_DIR/initdb.log" 2>&1; then
        cat "$GATEHOUSE_PG_DIR/initdb.log" >&2 || true
        _pg_die "initdb failed (output above, also in $GATEHOUSE_PG_DIR/initdb.log)"
        return 1
    fi
}

# Pick binaries matching an existing cluster's major version.
_pg_match_cluster_version() {
    local datadir=$1 ver cur
    [[ -f $datadir/PG_VERSION ]] || return 0
    ver=$(cat "$datadir/PG_VERSION")
    cur=$("$_GH_PG_BINDIR/pg_ctl" --version 2>/dev/null | sed -nE 's/^[^0-9]*([0-9]+).*/\1/p' || true)
    [[ $cur == "$ver" ]] && return 0
    if _pg_is_bindir "/usr/lib/postgresql/$ver/bin"; then
        _GH_PG_BINDIR=/usr/lib/postgresql/$ver/bin
        return 0
    fi
    _pg_die "cluster in $datadir is PostgreSQL $ver but only $cur binaries were found; remove $GATEHOUSE_PG_DIR to start afresh"
}

ensure_postgres() {
    local psql port datadir exists

    # A DATABASE_URL we exported ourselves (earlier call) is not "external".
    if [[ -n ${DATABASE_URL:-} && ${DATABASE_URL:-} != "$_GH_PG_OUR_URL" ]]; then
        GATEHOUSE_PG_EXTERNAL=1
        GATEHOUSE_PG_STARTED_BY_US=0
        export DATABASE_URL
        if psql=$(_pg_find_psql); then
            _pg_log "using DATABASE_URL from the environment; checking it connects"
            if ! PGCONNECT_TIMEOUT=10 "$psql" "$DATABASE_URL" -X -q -A -t -c 'select 1' >/dev/null; then
                _pg_die "cannot connect to DATABASE_URL"
                return 1
            fi
        else
            _pg_log "using DATABASE_URL from the environment (psql not found; not checking it)"
        fi
        return 0
    fi

    GATEHOUSE_PG_EXTERNAL=0
    GATEHOUSE_PG_STARTED_BY_US=0
    port=${GATEHOUSE_PG_PORT:-54329}
    if ! [[ $port =~ ^[0-9]+$ ]]; then
        _pg_die "GATEHOUSE_PG_PORT must be a number (got '$port')"
        return 1
    fi

    _pg_ensure_binaries || return 1
    _pg_prepare_dir || return 1
    datadir=$GATEHOUSE_PG_DIR/data
    _pg_match_cluster_version "$datadir" || return 1

    if [[ ! -f $datadir/PG_VERSION ]]; then
        _pg_initdb "$datadir" || return 1
    fi

    _pg_write_conf "$datadir" "$port" || { _pg_die "cannot write $datadir/gatehouse.conf"; return 1; }
    local restarted=0
    if [[ $_GH_PG_CONF_CHANGED -eq 1 ]] && _pg_server_running "$datadir"; then
        restarted=1
        _pg_log "settings changed (running on port $(_pg_running_port "$datadir"), wanted $port); restarting the cluster"
        if ! _pg_as_owner "$_GH_PG_BINDIR/pg_ctl" -D "$datadir" -l "$GATEHOUSE_PG_DIR/log" \
                -w -t 60 -m fast restart >&2; then
            _pg_log_tail
            _pg_die "pg_ctl restart failed"
            return 1
        fi
    fi

    if _pg_server_running "$datadir"; then
        if [[ $restarted -eq 0 ]]; then
            _pg_log "cluster in $datadir already running on port $(_pg_running_port "$datadir")"
        fi
    else
        if [[ -f $datadir/postmaster.pid ]]; then
            _pg_log "removing stale $datadir/postmaster.pid"
            rm -f -- "$datadir/postmaster.pid"
            rm -f -- "$GATEHOUSE_PG_DIR"/.s.PGSQL.*
        fi
        if _pg_port_in_use "$port"; then
            _pg_die "port $port on 127.0.0.1 is already in use by another process; set GATEHOUSE_PG_PORT to a free port (or DATABASE_URL)"
            return 1
        fi
        _pg_log "starting cluster in $datadir on 127.0.0.1:$port (log: $GATEHOUSE_PG_DIR/log)"
        if ! _pg_as_owner "$_GH_PG_BINDIR/pg_ctl" -D "$datadir" -l "$GATEHOUSE_PG_DIR/log" \
                -w -t 60 start >&2; then
            _pg_log_tail
            _pg_die "pg_ctl start failed"
            return 1
        fi
        GATEHOUSE_PG_STARTED_BY_US=1
    fi

    if ! psql=$(_pg_find_psql); then
        _pg_apt_install postgresql-client || return 1
        psql=$(_pg_find_psql) || { _pg_die "psql not found"; return 1; }
    fi

    local admin_url="postgresql://postgres@127.0.0.1:$port/postgres?sslmode=disable&connect_timeout=10"
    exists=$("$psql" "$admin_url" -X -q -A -t -c "select 1 from pg_database where datname = 'gatehouse'") || {
        _pg_die "cannot connect to the local cluster on 127.0.0.1:$port"
        return 1
    }
    if [[ $exists != 1 ]]; then
        _pg_log "creating database gatehouse"
        "$psql" "$admin_url" -X -q -c 'create database gatehouse' >/dev/null 2>&1 \
            || [[ $("$psql" "$admin_url" -X -q -A -t -c "select 1 from pg_database where datname = 'gatehouse'") == 1 ]] \
            || { _pg_die "could not create database gatehouse"; return 1; }
    fi

    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/gatehouse"
    _GH_PG_OUR_URL=$DATABASE_URL
    _pg_log "DATABASE_URL=$DATABASE_URL"
}

# Stop the project-local cluster. Leaves an external DATABASE_URL alone.
stop_postgres() {
    local dir datadir stopped=0
    if [[ $GATEHOUSE_PG_EXTERNAL == 1 ]] \
        || { [[ -z $GATEHOUSE_PG_EXTERNAL && -n ${DATABASE_URL:-} ]]; }; then
        _pg_log "DATABASE_URL was given from outside; leaving that database alone"
        return 0
    fi
    if [[ -z $_GH_PG_BINDIR ]]; then
        _GH_PG_BINDIR=$(_pg_find_bindir) || { _pg_log "no PostgreSQL binaries; nothing to stop"; return 0; }
    fi
    for dir in "$GATEHOUSE_ROOT/.local/pg" "$(_pg_fallback_dir)"; do
        datadir=$dir/data
        [[ -f $datadir/PG_VERSION ]] || continue
        GATEHOUSE_PG_DIR=$dir
        _pg_pick_run_user "$datadir" || return 1
        if ! _pg_server_running "$datadir"; then
            continue
        fi
        local saved_bindir=$_GH_PG_BINDIR
        _pg_match_cluster_version "$datadir" || return 1
        _pg_log "stopping cluster in $datadir"
        if ! _pg_as_owner "$_GH_PG_BINDIR/pg_ctl" -D "$datadir" -w -t 60 -m fast stop >&2; then
            _GH_PG_BINDIR=$saved_bindir
            _pg_die "pg_ctl stop failed for $datadir"
            return 1
        fi
        _GH_PG_BINDIR=$saved_bindir
        stopped=1
    done
    if [[ $stopped -eq 0 ]]; then
        _pg_log "project-local cluster is not running"
    fi
    GATEHOUSE_PG_STARTED_BY_US=0
    return 0
}

# Executed directly (not sourced): a small CLI around the functions above.
#   scripts/postgres.sh start   start/create the cluster, print DATABASE_URL on stdout
#   scripts/postgres.sh stop    stop the project-local cluster
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-start} in
        start)
            ensure_postgres
            printf '%s\n' "$DATABASE_URL"
            ;;
        stop)
            stop_postgres
            ;;
        *)
            printf 'usage: %s [start|stop]\n' "$0" >&2
            exit 2
            ;;
    esac
fi
