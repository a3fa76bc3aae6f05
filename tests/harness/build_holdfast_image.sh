#!/usr/bin/env bash
# Build the Holdfast image (holdfast:latest and holdfast:<version>) from the
# repository's Dockerfile, without any image registry.
#
# It builds on holdfast-test/base:bookworm (the debootstrapped Debian that
# build_images.sh makes; that script is run first if the base is missing) and
# installs Python packages from the PyPI mirror, so the build needs
# `--network host`. Like build_images.sh it is idempotent: the image carries a
# label with a hash of its build context (the files .dockerignore lets in, the
# Dockerfile, .dockerignore, the base image id), and an image whose label
# matches is reused. HOLDFAST_REBUILD_IMAGES=1 forces a rebuild;
# HOLDFAST_BUILD_NO_CACHE=1 also bypasses Docker's layer cache (a timing of a
# build from scratch on top of the base).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

base_image="holdfast-test/base:bookworm"
image="holdfast:latest"
# The Dockerfile's build stage, tagged so that the classic builder does not leave
# it behind as an untagged image on every rebuild (and so it can be removed when
# replaced). Its layers are the cache that makes code-only rebuilds quick.
stage_image="holdfast-test/holdfast-build-stage:latest"
rebuild="${HOLDFAST_REBUILD_IMAGES:-0}"
no_cache="${HOLDFAST_BUILD_NO_CACHE:-0}"
# Not holdfast.*: containers inherit image labels, and Holdfast reads those.
context_label="io.holdfast-test.context"
# The daemon is Debian's 20.10 without buildx; ask for the classic builder.
export DOCKER_BUILDKIT=0

say() { printf 'build_holdfast_image: %s\n' "$*"; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }

version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)"
if [ -z "$version" ]; then
    say "cannot read the version from pyproject.toml" >&2
    exit 1
fi
version_tag="holdfast:$version"

if ! image_exists "$base_image"; then
    say "$base_image is missing; running build_images.sh first"
    bash tests/harness/build_images.sh
fi

# The paths the allowlist in .dockerignore lets into the context (`!name` lines).
context_paths() {
    sed -n 's/^!\([^[:space:]]*\)[[:space:]]*$/\1/p' .dockerignore
}

context_hash() {
    local paths
    mapfile -t paths < <(context_paths)
    {
        docker image inspect --format '{{.Id}}' "$base_image"
        sha256sum Dockerfile .dockerignore
        # Same exclusions as .dockerignore's tail; -print0/sort -z for odd names.
        find "${paths[@]}" -type f \
            -not -path '*/__pycache__/*' -not -name '*.py[cod]' \
            -not -path '*.egg-info/*' -not -name '.DS_Store' -print0 |
            sort -z | xargs -0 -r sha256sum
    } | sha256sum | cut -d' ' -f1
}

# Locally added CAs (a TLS-inspecting proxy in front of PyPI, say) are passed to
# the build stage only; see EXTRA_CA_CERTS in the Dockerfile.
extra_ca=""
for crt in /usr/local/share/ca-certificates/*.crt /usr/local/share/ca-certificates/*/*.crt; do
    if [ -f "$crt" ]; then
        extra_ca+="$(cat "$crt")"$'\n'
    fi
done

build() {
    local ctx_hash="$1" logf
    local -a args=(--force-rm --network host --build-arg "BASE=$base_image") stage_args=()
    if [ -n "$extra_ca" ]; then
        args+=(--build-arg "EXTRA_CA_CERTS=$extra_ca")
    fi
    if [ "$no_cache" = 1 ]; then
        stage_args+=(--no-cache)
    fi
    logf="$(mktemp /tmp/holdfast-build-image.XXXXXX.log)"
    # The build stage first, under its own tag; the full build then finds all
    # of it in the layer cache.
    if ! docker build "${args[@]}" "${stage_args[@]}" \
            --target build -t "$stage_image" . >"$logf" 2>&1 ||
        ! docker build "${args[@]}" --label "$context_label=$ctx_hash" \
            -t "$image" -t "$version_tag" . >>"$logf" 2>&1; then
        say "docker build of $image failed; last lines of $logf:" >&2
        tail -n 60 "$logf" >&2
        return 1
    fi
    rm -f "$logf"
}

report() {
    local what="$1" started="$2" size
    size="$(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1000000 }')"
    say "$image ($version_tag): $what in $((SECONDS - started)) s ($size)"
}

start=$SECONDS
ctx_hash="$(context_hash)"
current=""
if image_exists "$image"; then
    current="$(docker image inspect --format "{{index .Config.Labels \"$context_label\"}}" "$image")"
fi
if [ "$rebuild" != 1 ] && [ "$no_cache" != 1 ] && [ "$current" = "$ctx_hash" ]; then
    # The version tag may have been removed by hand; the version itself is in
    # pyproject.toml, which the hash covers.
    if [ "$(image_id "$version_tag")" != "$(image_id "$image")" ]; then
        docker tag "$image" "$version_tag"
    fi
    report reused "$start"
else
    old="$(image_id "$image")"
    old_stage="$(image_id "$stage_image")"
    build "$ctx_hash"
    report built "$start"
    # Replaced images go, unless still used by a container or tagged otherwise.
    if [ -n "$old" ] && [ "$old" != "$(image_id "$image")" ]; then
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
    if [ -n "$old_stage" ] && [ "$old_stage" != "$(image_id "$stage_image")" ]; then
        docker image rm "$old_stage" >/dev/null 2>&1 || true
    fi
fi
