#!/bin/sh
# Mirrors the official redis image's entrypoint.
set -e

# `docker run IMAGE --requirepass x` or `IMAGE /path/redis.conf` mean redis-server.
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi

if [ "$1" = 'redis-server' ] && [ "$(id -u)" = '0' ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "$0" "$@"
fi

if [ "$1" = 'redis-server' ]; then
    # Upstream builds redis with protected mode off by default (the image has
    # no config file binding it to loopback); a Debian binary needs the flag.
    # It goes last (redis reads -v/--help only as the first argument), unless
    # a config file comes first or the command sets protected mode itself.
    want_flag=1
    case "${2:-}" in *.conf) want_flag=0 ;; esac
    for arg; do
        case "$arg" in --protected-mode) want_flag=0 ;; esac
    done
    if [ "$want_flag" = 1 ]; then
        set -- "$@" --protected-mode no
    fi
fi

# Files redis creates are private unless a umask was set on purpose.
um="$(umask)"
if [ "$um" = '0022' ]; then
    umask 0077
fi

exec "$@"
