#!/usr/bin/env bash
# Entrypoint of holdfast-test/mariadb:10.11, following the official mariadb
# image's docker-entrypoint.sh (10.11) step for step, because Holdfast must
# work with containers of that image: the same variables (MARIADB_* with the
# MYSQL_* names as fallbacks, *_FILE for secrets, MARIADB_ROOT_HOST,
# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD,
# MARIADB_INITDB_SKIP_TZINFO), the same /docker-entrypoint-initdb.d handling,
# and the same two-phase start: on an empty data directory it runs
# mariadb-install-db, starts a temporary server with --skip-networking (unix
# socket only), creates root@'%', the database and the user, runs the init
# scripts, stops the temporary server and only then execs the real one, which
# is the first to listen on TCP.
# Passwords reach the client through MYSQL_PWD and SQL read from stdin, never
# through a command line. Left out: the *_PASSWORD_HASH variables, the
# replication and healthcheck users and automatic upgrades.
set -eo pipefail
shopt -s nullglob

mysql_log() {
    local type="$1"; shift
    local text="$*"
    if [ "$#" -eq 0 ]; then text="$(cat)"; fi
    local dt
    dt="$(date --rfc-3339=seconds)"
    printf '%s [%s] [Entrypoint]: %s\n' "$dt" "$type" "$text"
}
mysql_note() { mysql_log Note "$@"; }
mysql_warn() { mysql_log Warn "$@" >&2; }
mysql_error() {
    mysql_log ERROR "$@" >&2
    exit 1
}

# usage: file_env VAR [DEFAULT]
#    ie: file_env 'XYZ_DB_PASSWORD' 'example'
# Reads VAR or VAR_FILE (a Docker secret), never both.
file_env() {
    local var="$1"
    local fileVar="${var}_FILE"
    local def="${2:-}"
    if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
        mysql_error "Both $var and $fileVar are set (but are exclusive)"
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

# Reads MYSQL_X (or its _FILE), then MARIADB_X (or its _FILE) defaulting to
# it; the MARIADB_ name wins and both end up with the same value.
_mariadb_file_env() {
    local var="$1"; shift
    local maria="MARIADB_${var#MYSQL_}"
    file_env "$var" "$@"
    file_env "$maria" "${!var}"
    if [ "${!maria:-}" ]; then
        export "$var"="${!maria}"
    fi
}

# Sourced init scripts may call these functions; do not run main then.
_is_sourced() {
    [ "${#FUNCNAME[@]}" -ge 2 ] \
        && [ "${FUNCNAME[0]}" = '_is_sourced' ] \
        && [ "${FUNCNAME[1]}" = 'source' ]
}

# usage: docker_process_init_files [file [file [...]]]
#    ie: docker_process_init_files /always-initdb.d/*
# Runs *.sh (executed if executable, else sourced) and loads *.sql,
# *.sql.gz, *.sql.xz and *.sql.zst into the temporary server.
docker_process_init_files() {
    echo
    local f
    for f; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    mysql_note "$0: running $f"
                    "$f"
                else
                    mysql_note "$0: sourcing $f"
                    # shellcheck disable=SC1090
                    . "$f"
                fi
                ;;
            *.sql)     mysql_note "$0: running $f"; docker_process_sql < "$f"; echo ;;
            *.sql.gz)  mysql_note "$0: running $f"; gunzip -c "$f" | docker_process_sql; echo ;;
            *.sql.xz)  mysql_note "$0: running $f"; xzcat "$f" | docker_process_sql; echo ;;
            *.sql.zst) mysql_note "$0: running $f"; zstd -dc "$f" | docker_process_sql; echo ;;
            *)         mysql_warn "$0: ignoring $f" ;;
        esac
        echo
    done
}

# Fails early, with the server's own message, on options it does not accept.
mysql_check_config() {
    local toRun=( "$@" --verbose --help --log-bin-index="$(mktemp -u)" ) errors
    if ! errors="$("${toRun[@]}" 2>&1 >/dev/null)"; then
        mysql_error $'mariadbd failed while attempting to check config\n\tcommand was: '"${toRun[*]}"$'\n\t'"$errors"
    fi
}

# The value the server would use for an option, command line included.
# usage: mysql_get_config OPTION MARIADBD-ARGS...
mysql_get_config() {
    local conf="$1"; shift
    "$@" --verbose --help 2>/dev/null \
        | awk -v conf="$conf" '$1 == conf && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'
}

# The temporary server listens on the unix socket only, so nothing (readiness
# probes included) can reach it over TCP before initialisation has finished.
docker_temp_server_start() {
    "$@" --skip-networking --default-time-zone=SYSTEM --socket="${SOCKET}" --wsrep_on=OFF \
        --expire-logs-days=0 \
        --skip-slave-start \
        --loose-innodb_buffer_pool_load_at_startup=0 \
        --skip-ssl \
        &
    declare -g MARIADB_PID
    MARIADB_PID=$!
    mysql_note "Waiting for server startup"
    # Upstream polls once a second for 30 s; finer polls only start sooner.
    local i
    for i in {150..0}; do
        if docker_process_sql --dont-use-mysql-root-password --database=mysql <<<'SELECT 1' &> /dev/null; then
            break
        fi
        if ! kill -0 "$MARIADB_PID" 2>/dev/null; then
            mysql_error "Unable to start server: the temporary server exited."
        fi
        sleep 0.2
    done
    if [ "$i" = 0 ]; then
        mysql_error "Unable to start server."
    fi
}

docker_temp_server_stop() {
    kill "$MARIADB_PID"
    wait "$MARIADB_PID"
}

docker_verify_minimum_env() {
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] \
            && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        mysql_error $'Database is uninitialized and password option is not specified\n\tYou need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD'
    fi
    # A CREATE USER for root would fail half way through initialisation.
    if [ "$MARIADB_USER" = 'root' ]; then
        mysql_error $'MARIADB_USER="root", MYSQL_USER="root" cannot be used for the root user\n\tUse one of the following to control the root user password:\n\t- MARIADB_ROOT_PASSWORD\n\t- MARIADB_ALLOW_EMPTY_ROOT_PASSWORD\n\t- MARIADB_RANDOM_ROOT_PASSWORD'
    fi
    if [ -n "$MARIADB_PASSWORD" ] && [ -z "$MARIADB_USER" ]; then
        mysql_warn 'MARIADB_PASSWORD specified without MARIADB_USER. Users will not be created'
    fi
    if [ -n "$MARIADB_USER" ] && [ -z "$MARIADB_PASSWORD" ]; then
        mysql_error 'MARIADB_USER specified, but missing MARIADB_PASSWORD'
    fi
}

# A fresh named volume is root-owned; hand it to mysql before dropping
# privileges (only root can).
docker_create_db_directories() {
    local user
    user="$(id -u)"
    mkdir -p "$DATADIR"
    if [ "$user" = "0" ]; then
        find "$DATADIR" \! -user mysql -exec chown mysql: '{}' +
        if [ "${SOCKET:0:1}" != '@' ]; then  # not an abstract socket
            find "${SOCKET%/*}" -maxdepth 0 \! -user mysql -exec chown mysql: '{}' \;
        fi
    fi
}

docker_init_database_dir() {
    mysql_note "Initializing database files"
    # "Other options are passed to mariadbd", so the server's own arguments
    # (all but the program name) go along.
    mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
        "${@:2}" \
        --cross-bootstrap \
        --skip-test-db \
        --old-mode='UTF8_IS_UTF8MB3' \
        --default-time-zone=SYSTEM --enforce-storage-engine= \
        --skip-log-bin \
        --expire-logs-days=0 \
        --loose-innodb_buffer_pool_load_at_startup=0 \
        --loose-innodb_buffer_pool_dump_at_shutdown=0
    mysql_note "Database files initialized"
}

docker_setup_env() {
    declare -g DATADIR SOCKET
    DATADIR="$(mysql_get_config 'datadir' "$@")"
    SOCKET="$(mysql_get_config 'socket' "$@")"

    _mariadb_file_env 'MYSQL_ROOT_HOST' '%'
    _mariadb_file_env 'MYSQL_DATABASE'
    _mariadb_file_env 'MYSQL_USER'
    _mariadb_file_env 'MYSQL_PASSWORD'
    _mariadb_file_env 'MYSQL_ROOT_PASSWORD'

    # The MARIADB_ names default to the MYSQL_ ones, then both agree.
    : "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:=${MYSQL_ALLOW_EMPTY_PASSWORD:-}}"
    export MYSQL_ALLOW_EMPTY_PASSWORD="$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
    : "${MARIADB_RANDOM_ROOT_PASSWORD:=${MYSQL_RANDOM_ROOT_PASSWORD:-}}"
    export MYSQL_RANDOM_ROOT_PASSWORD="$MARIADB_RANDOM_ROOT_PASSWORD" MARIADB_RANDOM_ROOT_PASSWORD
    : "${MARIADB_INITDB_SKIP_TZINFO:=${MYSQL_INITDB_SKIP_TZINFO:-}}"
    export MYSQL_INITDB_SKIP_TZINFO="$MARIADB_INITDB_SKIP_TZINFO" MARIADB_INITDB_SKIP_TZINFO

    declare -g DATABASE_ALREADY_EXISTS
    if [ -d "$DATADIR/mysql" ]; then
        DATABASE_ALREADY_EXISTS='true'
    fi
}

# Runs the mariadb client against the temporary server's socket.
# usage: docker_exec_client [mariadb-cli-args]
docker_exec_client() {
    # Arguments given later (a --database) override this one.
    if [ -n "$MYSQL_DATABASE" ]; then
        set -- --database="$MYSQL_DATABASE" "$@"
    fi
    mariadb --protocol=socket -uroot -hlocalhost --socket="${SOCKET}" "$@"
}

# Runs SQL as root; --dont-use-mysql-root-password while root has none yet.
# usage: docker_process_sql [--dont-use-mysql-root-password] [mariadb-cli-args]
#    ie: docker_process_sql --database=mydb <<<'INSERT ...'
#    ie: docker_process_sql --dont-use-mysql-root-password --database=mydb <my-file.sql
docker_process_sql() {
    if [ '--dont-use-mysql-root-password' = "$1" ]; then
        shift
        MYSQL_PWD='' docker_exec_client "$@"
    else
        MYSQL_PWD=$MARIADB_ROOT_PASSWORD docker_exec_client "$@"
    fi
}

# Escapes a value for a single-quoted SQL string literal.
docker_sql_escape_string_literal() {
    local newline=$'\n'
    local escaped=${1//\\/\\\\}
    escaped="${escaped//$newline/\\n}"
    echo "${escaped//\'/\\\'}"
}

docker_setup_db() {
    if [ -z "$MARIADB_INITDB_SKIP_TZINFO" ]; then
        # --skip-write-binlog also makes it use LOCK TABLES, faster for Aria.
        mariadb-tzinfo-to-sql --skip-write-binlog /usr/share/zoneinfo 2>/dev/null \
            | docker_process_sql --dont-use-mysql-root-password --database=mysql
    fi
    if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
        MARIADB_ROOT_PASSWORD="$(head -c 64 /dev/urandom | base64 -w0 | tr -d '/+=' | cut -c1-32)"
        export MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD=$MARIADB_ROOT_PASSWORD
        mysql_note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
    fi

    local rootPasswordEscaped=
    if [ -n "$MARIADB_ROOT_PASSWORD" ]; then
        rootPasswordEscaped=$(docker_sql_escape_string_literal "${MARIADB_ROOT_PASSWORD}")
    fi

    # root may connect from anywhere by default (MARIADB_ROOT_HOST=%).
    local rootCreate=
    if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != 'localhost' ]; then
        read -r -d '' rootCreate <<-EOSQL || true
			CREATE USER 'root'@'${MARIADB_ROOT_HOST}' IDENTIFIED BY '${rootPasswordEscaped}' ;
			GRANT ALL ON *.* TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION ;
			GRANT PROXY ON ''@'%' TO 'root'@'${MARIADB_ROOT_HOST}' WITH GRANT OPTION;
		EOSQL
    fi

    local rootLocalhostPass="SET PASSWORD FOR 'root'@'localhost'= PASSWORD('${rootPasswordEscaped}');"

    local createDatabase=
    if [ -n "$MARIADB_DATABASE" ]; then
        mysql_note "Creating database ${MARIADB_DATABASE}"
        createDatabase="CREATE DATABASE IF NOT EXISTS \`$MARIADB_DATABASE\`;"
    fi

    local createUser=
    local userGrants=
    if [ -n "$MARIADB_PASSWORD" ] && [ -n "$MARIADB_USER" ]; then
        mysql_note "Creating user ${MARIADB_USER}"
        local userPasswordEscaped
        userPasswordEscaped=$(docker_sql_escape_string_literal "${MARIADB_PASSWORD}")
        createUser="CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$userPasswordEscaped';"
        if [ -n "$MARIADB_DATABASE" ]; then
            mysql_note "Giving user ${MARIADB_USER} access to schema ${MARIADB_DATABASE}"
            userGrants="GRANT ALL ON \`${MARIADB_DATABASE//_/\\_}\`.* TO '$MARIADB_USER'@'%';"
        fi
    fi

    mysql_note "Securing system users (equivalent to running mysql_secure_installation)"
    # --binary-mode keeps the client from interpreting passwords that contain
    # backslash sequences.
    docker_process_sql --dont-use-mysql-root-password --database=mysql --binary-mode <<-EOSQL
		-- Securing system users shouldn't be replicated
		SET @orig_sql_log_bin= @@SESSION.SQL_LOG_BIN;
		SET @@SESSION.SQL_LOG_BIN=0;
		-- the escaping above needs NO_BACKSLASH_ESCAPES off
		SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');

		DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
		EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');

		${rootLocalhostPass}
		${rootCreate}
		${createDatabase}
		${createUser}
		${userGrants}
		SET @@SESSION.SQL_LOG_BIN=@orig_sql_log_bin;
	EOSQL
}

# "mariadbd --help" and friends must not trigger initialisation.
_mysql_want_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?'|--help|--print-defaults|-V|--version)
                return 0
                ;;
        esac
    done
    return 1
}

docker_mariadb_init() {
    # Fail early on an unreadable init directory rather than half way.
    ls /docker-entrypoint-initdb.d/ > /dev/null

    docker_init_database_dir "$@"

    mysql_note "Starting temporary server"
    docker_temp_server_start "$@"
    mysql_note "Temporary server started."

    docker_setup_db
    docker_process_init_files /docker-entrypoint-initdb.d/*

    mysql_note "Stopping temporary server"
    docker_temp_server_stop
    mysql_note "Temporary server stopped"

    echo
    mysql_note "MariaDB init process done. Ready for start up."
    echo
}

_main() {
    # `docker run IMAGE --flag` means `mariadbd --flag`.
    if [ "${1:0:1}" = '-' ]; then
        set -- mariadbd "$@"
    fi

    if { [ "$1" = 'mariadbd' ] || [ "$1" = 'mysqld' ]; } && ! _mysql_want_help "$@"; then
        mysql_note "Entrypoint script for MariaDB Server $(mariadbd --version | awk '{ print $3 }') started."

        mysql_check_config "$@"
        docker_setup_env "$@"
        docker_create_db_directories

        if [ "$(id -u)" = "0" ]; then
            mysql_note "Switching to dedicated user 'mysql'"
            exec gosu mysql "${BASH_SOURCE[0]}" "$@"
        fi

        if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
            docker_verify_minimum_env
            docker_mariadb_init "$@"
        fi
    fi
    exec "$@"
}

if ! _is_sourced; then
    _main "$@"
fi
