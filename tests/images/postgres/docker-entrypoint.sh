#!/usr/bin/env bash
# Entrypoint of holdfast-test/postgres:15, following the official postgres
# image's docker-entrypoint.sh step for step, because Holdfast must work with
# containers of that image: same variables (POSTGRES_USER, POSTGRES_PASSWORD
# and *_FILE, POSTGRES_DB, POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
# POSTGRES_HOST_AUTH_METHOD), same /docker-entrypoint-initdb.d handling, and
# the same two-phase start: during initialisation a temporary server listens
# on the unix socket only, so a readiness probe on the socket can succeed
# before the real server (the first to accept TCP) is up.
# Passwords reach initdb through --pwfile and psql through variables read from
# stdin, never through a command line.
set -Eeo pipefail

# usage: file_env VAR [DEFAULT]
#    ie: file_env 'POSTGRES_PASSWORD' 'example'
# Reads VAR or VAR_FILE (a Docker secret), never both.
file_env() {
    local var="$1"
    local fileVar="${var}_FILE"
    local def="${2:-}"
    if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
        printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
        exit 1
    fi
    local val="$def"
    if [ "${!var:-}" ]; then
        val="${!var}"
    elif [ "${!fileVar:-}" ]; then
        val="$(< "${!fileVar}")"
    fi
    export "$var"="$val"
    unset "$fileVar"
}

# Sourced init scripts may call these functions; do not run main then.
_is_sourced() {
    [ "${#FUNCNAME[@]}" -ge 2 ] \
        && [ "${FUNCNAME[0]}" = '_is_sourced' ] \
        && [ "${FUNCNAME[1]}" = 'source' ]
}

docker_create_db_directories() {
    local user
    user="$(id -u)"

    mkdir -p "$PGDATA"
    # postgres refuses a group/world-readable PGDATA; failure here shows up
    # later with a clearer message from postgres itself.
    chmod 00700 "$PGDATA" || :

    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :

    # Created before initdb so that it belongs to the right user.
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        if [ "$user" = '0' ]; then
            find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
        fi
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi

    # A fresh named volume is root-owned; hand it to postgres before dropping
    # privileges (only root can).
    if [ "$user" = '0' ]; then
        find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
    fi
}

docker_init_database_dir() {
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        set -- --waldir "$POSTGRES_INITDB_WALDIR" "$@"
    fi
    # --pwfile rejects a truly empty file, hence the newline. eval lets
    # POSTGRES_INITDB_ARGS carry quoted words, as upstream documents.
    # shellcheck disable=SC2016
    eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"' "$@"'
}

docker_verify_minimum_env() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
        cat >&2 <<-'EOE'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOE
        exit 1
    fi
    if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
        cat >&2 <<-'EOWARN'
			********************************************************************************
			WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
			         anyone with access to the Postgres port to access your database without
			         a password, even if POSTGRES_PASSWORD is set.
			         It is not recommended to use POSTGRES_HOST_AUTH_METHOD=trust. Replace
			         it with "-e POSTGRES_PASSWORD=password" instead to set a password in
			         "docker run".
			********************************************************************************
		EOWARN
    fi
}

# usage: docker_process_init_files [file [file [...]]]
#    ie: docker_process_init_files /docker-entrypoint-initdb.d/*
docker_process_init_files() {
    # psql here for backwards compatibility with init scripts using "${psql[@]}"
    # shellcheck disable=SC2034
    psql=(docker_process_sql)

    printf '\n'
    local f
    for f; do
        case "$f" in
            *.sh)
                # Executable scripts run in their own process; others are
                # sourced so they can use the functions defined here.
                if [ -x "$f" ]; then
                    printf '%s: running %s\n' "$0" "$f"
                    "$f"
                else
                    printf '%s: sourcing %s\n' "$0" "$f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql)     printf '%s: running %s\n' "$0" "$f"; docker_process_sql -f "$f"; printf '\n' ;;
            *.sql.gz)  printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | docker_process_sql; printf '\n' ;;
            *.sql.xz)  printf '%s: running %s\n' "$0" "$f"; xzcat "$f" | docker_process_sql; printf '\n' ;;
            *.sql.zst) printf '%s: running %s\n' "$0" "$f"; zstd -dc "$f" | docker_process_sql; printf '\n' ;;
            *)         printf '%s: ignoring %s\n' "$0" "$f" ;;
        esac
        printf '\n'
    done
}

# Runs SQL against the temporary server over the unix socket.
# usage: docker_process_sql [psql-cli-args]
#    ie: docker_process_sql --dbname=mydb <<<'INSERT ...'
#    ie: docker_process_sql -f my-file.sql
#    ie: docker_process_sql <my-file.sql
docker_process_sql() {
    local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
    if [ -n "$POSTGRES_DB" ]; then
        query_runner+=(--dbname "$POSTGRES_DB")
    fi

    # An inherited PGHOST would send the init SQL over TCP, which the
    # temporary server does not listen on.
    PGHOST='' PGHOSTADDR='' "${query_runner[@]}" "$@"
}

# The name goes in as a psql variable so that quoting is psql's job. The
# POSTGRES_DB='' prefix only keeps docker_process_sql from adding --dbname;
# the expansion on the same line deliberately still sees the real name.
# shellcheck disable=SC2097,SC2098
docker_setup_db() {
    local dbAlreadyExists
    dbAlreadyExists="$(
        POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
			SELECT 1 FROM pg_database WHERE datname = :'db' ;
		EOSQL
    )"
    if [ -z "$dbAlreadyExists" ]; then
        POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
        printf '\n'
    fi
}

docker_setup_env() {
    file_env 'POSTGRES_PASSWORD'

    file_env 'POSTGRES_USER' 'postgres'
    file_env 'POSTGRES_DB' "$POSTGRES_USER"
    file_env 'POSTGRES_INITDB_ARGS'
    : "${POSTGRES_HOST_AUTH_METHOD:=}"

    declare -g DATABASE_ALREADY_EXISTS
    : "${DATABASE_ALREADY_EXISTS:=}"
    # PG_VERSION is what initdb writes first and what postgres checks.
    if [ -s "$PGDATA/PG_VERSION" ]; then
        DATABASE_ALREADY_EXISTS='true'
    fi
}

# Remote connections get the password method the server hashes with
# (scram-sha-256 on 15) unless POSTGRES_HOST_AUTH_METHOD says otherwise.
# Local socket and loopback stay "trust", as initdb sets them up.
pg_setup_hba_conf() {
    if [ "$1" = 'postgres' ]; then
        shift
    fi
    local auth
    auth="$(postgres -C password_encryption "$@")"
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    {
        printf '\n'
        if [ 'trust' = "$POSTGRES_HOST_AUTH_METHOD" ]; then
            printf '# warning trust is enabled for all connections\n'
            printf '# see https://www.postgresql.org/docs/15/auth-trust.html\n'
        fi
        printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
    } >> "$PGDATA/pg_hba.conf"
}

# The temporary server listens on the unix socket only, so nothing outside the
# container can connect before initialisation has finished.
docker_temp_server_start() {
    if [ "$1" = 'postgres' ]; then
        shift
    fi

    set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"

    PGUSER="${PGUSER:-$POSTGRES_USER}" \
    pg_ctl -D "$PGDATA" \
        -o "$(printf '%q ' "$@")" \
        -w start
}

docker_temp_server_stop() {
    PGUSER="${PGUSER:-postgres}" \
    pg_ctl -D "$PGDATA" -m fast -w stop
}

# "postgres --help" and friends must not trigger initialisation.
_pg_want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--describe-config|-V|--version)
                return 0
                ;;
        esac
    done
    return 1
}

_main() {
    # `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`.
    if [ "${1:0:1}" = '-' ]; then
        set -- postgres "$@"
    fi

    if [ "$1" = 'postgres' ] && ! _pg_want_help "$@"; then
        docker_setup_env
        docker_create_db_directories
        if [ "$(id -u)" = '0' ]; then
            # Start over as postgres, which owns the data from here on.
            exec gosu postgres "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            docker_verify_minimum_env

            # Fail early on an unreadable init directory rather than after initdb.
            ls /docker-entrypoint-initdb.d/ > /dev/null

            docker_init_database_dir
            pg_setup_hba_conf "$@"

            # Needed for psql when POSTGRES_INITDB_ARGS makes local
            # connections require a password; harmless otherwise.
            export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
            docker_temp_server_start "$@"

            docker_setup_db
            docker_process_init_files /docker-entrypoint-initdb.d/*

            docker_temp_server_stop
            unset PGPASSWORD

            cat <<-'EOM'

				PostgreSQL init process complete; ready for start up.

			EOM
        else
            cat <<-'EOM'

				PostgreSQL Database directory appears to contain a database; Skipping initialization

			EOM
        fi
    fi

    exec "$@"
}

if ! _is_sourced; then
    _main "$@"
fi
