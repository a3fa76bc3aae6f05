#!/usr/bin/env bash
# Build the container images the Docker tests run, without any image registry.
#
# There is no registry to pull from on the dev and CI machines, so the Debian
# base is bootstrapped from the Debian package mirror and imported, and every
# other test image is built FROM it. Images that already exist are reused; the
# postgres image is also rebuilt when its build context or the base changes, so
# an edited Dockerfile never silently tests a stale image.
# HOLDFAST_REBUILD_IMAGES=1 forces a rebuild of everything.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

base_image="holdfast-test/base:bookworm"
pg_image="holdfast-test/postgres:15"
pg_context="tests/images/postgres"
redis_image="holdfast-test/redis:7"
redis_context="tests/images/redis"
mariadb_image="holdfast-test/mariadb:10.11"
mariadb_context="tests/images/mariadb"
app_image="holdfast-test/app:1"
app_context="tests/images/app"
mirror="${HOLDFAST_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
rebuild="${HOLDFAST_REBUILD_IMAGES:-0}"
# Not holdfast.*: containers inherit image labels, and Holdfast reads those.
context_label="io.holdfast-test.context"
# The daemon is Debian's 20.10 without buildx; ask for the classic builder
# explicitly so newer CLIs do not go looking for BuildKit.
export DOCKER_BUILDKIT=0

say() { printf 'build_images: %s\n' "$*"; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

rootfs=""
cleanup() {
    if [ -n "$rootfs" ] && [ -d "$rootfs" ]; then
        # debootstrap mounts /proc and /sys inside the target; a failed run can
        # leave them behind, and rm must never walk into a live mount.
        awk -v d="$rootfs" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
            while read -r m; do umount -l "$m" || true; done
        rm -rf --one-file-system "$rootfs"
    fi
}
trap cleanup EXIT

build_base() {
    local logf
    rootfs="$(mktemp -d /var/tmp/holdfast-rootfs.XXXXXX)"
    logf="$(mktemp /tmp/holdfast-debootstrap.XXXXXX.log)"
    if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$logf" 2>&1; then
        say "debootstrap failed; last lines of $logf:" >&2
        tail -n 40 "$logf" >&2
        [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
        return 1
    fi
    rm -f "$logf"

    # Later `apt-get install` in Dockerfiles needs updates and security too, and
    # debootstrap only writes the release itself.
    cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES

    # The rest mirrors what the official debian:bookworm-slim image (which
    # postgres:15 is built on) configures, so the test images behave alike.
    cat >"$rootfs/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
# Services must not start during image builds.
exit 101
POLICY
    chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
DPKG
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/*
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log "$rootfs"/tmp/*
    # Docker bind-mounts these per container; never bake in the build host's.
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"

    tar -C "$rootfs" --numeric-owner -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            - "$base_image" >/dev/null
    cleanup
    rootfs=""
}

# Each test image is keyed on its build context plus the exact base image, so
# a rebuilt base or an edited entrypoint both lead to a rebuild.
context_hash() {
    local context="$1"
    {
        docker image inspect --format '{{.Id}}' "$base_image"
        find "$context" -type f -print0 | sort -z | xargs -0 sha256sum
        find "$context" -type f -perm -u+x -print | sort
    } | sha256sum | cut -d' ' -f1
}

build_image() {
    local image="$1" context="$2" ctx_hash="$3" logf
    logf="$(mktemp "/tmp/holdfast-build-$(basename "$context").XXXXXX.log")"
    if ! docker build --force-rm --network host --label "$context_label=$ctx_hash" \
        -t "$image" "$context" >"$logf" 2>&1; then
        say "docker build of $image failed; last lines of $logf:" >&2
        tail -n 60 "$logf" >&2
        return 1
    fi
    rm -f "$logf"
}

report() {
    local name="$1" what="$2" started="$3" size
    size="$(docker image inspect --format '{{.Size}}' "$name" | awk '{ printf "%.0f MB", $1 / 1000000 }')"
    say "$name: $what in $((SECONDS - started)) s ($size)"
}

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

# Ids replaced by this run; removed at the end so rebuilds do not pile up
# dangling 400 MB images (children first, then the base they were built on).
replaced=()

start=$SECONDS
if [ "$rebuild" != 1 ] && image_exists "$base_image"; then
    report "$base_image" reused "$start"
else
    old="$(image_id "$base_image")"
    build_base
    report "$base_image" built "$start"
    if [ -n "$old" ] && [ "$old" != "$(image_id "$base_image")" ]; then
        replaced+=("$old")
    fi
fi

# Reuse the image when its context label matches, else build it and remember
# the id it replaced.
ensure_image() {
    local image="$1" context="$2" started=$SECONDS ctx_hash current="" old
    ctx_hash="$(context_hash "$context")"
    if image_exists "$image"; then
        current="$(docker image inspect --format "{{index .Config.Labels \"$context_label\"}}" "$image")"
    fi
    if [ "$rebuild" != 1 ] && [ "$current" = "$ctx_hash" ]; then
        report "$image" reused "$started"
        return
    fi
    old="$(image_id "$image")"
    build_image "$image" "$context" "$ctx_hash"
    report "$image" built "$started"
    if [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ]; then
        replaced=("$old" "${replaced[@]}")
    fi
}

ensure_image "$pg_image" "$pg_context"
ensure_image "$redis_image" "$redis_context"
ensure_image "$mariadb_image" "$mariadb_context"
ensure_image "$app_image" "$app_context"

for id in "${replaced[@]}"; do
    # Still used by a container or another image: leave it.
    docker image rm "$id" >/dev/null 2>&1 || true
done
