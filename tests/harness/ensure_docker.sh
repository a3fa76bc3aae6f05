#!/usr/bin/env bash
# Make sure a Docker engine is installed and answering, starting one if needed.
#
# Idempotent: with a healthy engine it only runs `docker info` and exits 0.
# CI machines are plain Debian 12 VMs without systemd as PID 1, so dockerd is
# started directly (setsid, detached from this shell) rather than via a service
# manager. The engine keeps running after this script exits on purpose: the
# test session that follows needs it.
set -euo pipefail

log="${HOLDFAST_DOCKERD_LOG:-/tmp/holdfast-dockerd.log}"

say() { printf 'ensure_docker: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
    say "dockerd not found; installing docker.io debootstrap docker-compose"
    apt_install docker.io debootstrap docker-compose
fi
# The image builder needs these too; they may be missing even when docker is not.
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    apt_install debootstrap
fi
# The warm-copy tests give a private engine a loop-mounted XFS with reflinks.
if ! command -v mkfs.xfs >/dev/null 2>&1; then
    say "installing xfsprogs"
    apt_install xfsprogs
fi
if ! command -v docker-compose >/dev/null 2>&1; then
    say "installing docker-compose"
    apt_install docker-compose
fi

if docker info >/dev/null 2>&1; then
    say "engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

# A pid file left by a daemon that died (or by a machine image snapshot) makes a
# fresh dockerd refuse to start, so clear it when nothing is really running.
pid_is_stale() {
    local file="$1" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file" 2>/dev/null || true)"
    [ -z "$pid" ] && return 0
    ! kill -0 "$pid" 2>/dev/null
}

if ! pgrep -x dockerd >/dev/null 2>&1; then
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if pid_is_stale "$pidfile"; then
            say "removing stale $pidfile"
            as_root rm -f "$pidfile"
        fi
    done
    say "starting dockerd (log: $log)"
    # Detached so it survives this script and does not hold CI's stdout open.
    as_root setsid dockerd >"$log" 2>&1 </dev/null &
else
    say "dockerd is running but not answering yet; waiting"
fi

for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        say "engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
        exit 0
    fi
    sleep 1
done

say "docker engine did not come up within 60 s; last lines of $log:" >&2
tail -n 40 "$log" >&2 || true
exit 1
