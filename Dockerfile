# The Holdfast daemon image: `docker build -t holdfast:latest .`
#
# Two stages on the same Debian base. The build stage makes a virtualenv in
# /opt/holdfast and installs the project into it (a real, non-editable install,
# so the Alembic migrations ship as package data); the runtime stage copies only
# that venv, so no source tree, build tools or build-time CA certificates end up
# in the image.
#
# BASE defaults to the official Debian image. Where there is no registry (the
# project's dev and CI machines) build on the debootstrapped lookalike:
#   bash tests/harness/build_holdfast_image.sh
# which runs `docker build --build-arg BASE=holdfast-test/base:bookworm ...`.
#
# Running it (see docker-compose.yml for a complete deployment):
#   docker run -d --name holdfast -e HOLDFAST_API_TOKEN="$(openssl rand -hex 32)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v holdfast-data:/var/lib/holdfast -p 127.0.0.1:8420:8420 \
#     --stop-timeout 75 holdfast:latest
# The API listens on 0.0.0.0 inside the container (the port mapping decides who
# reaches it). Every /v1 request needs a token: HOLDFAST_API_TOKEN is the bootstrap
# admin one; more come from `docker exec holdfast holdfast tokens create ...`.
# The process runs as the unprivileged user `holdfast` (uid/gid 10001). The
# Docker socket belongs to root and the host's `docker` group (mode 660), whose
# gid differs from host to host, so the container must be given that group:
# `--group-add <gid>` / compose `group_add`. Without it Holdfast starts, but
# /readyz answers 503 (Docker unreachable: permission denied). Read-only is
# enough for the mount itself; note that anything that can talk to the socket
# controls the engine, read-only mount or not.
# --stop-timeout (compose: stop_grace_period) must exceed HOLDFAST_SHUTDOWN_GRACE
# (60 s by default), or Docker kills running snapshots before they can finish.

ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build

# Identical to the runtime stage's first RUN, so the two stages share the layer.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates; \
    rm -rf /var/lib/apt/lists/*

# Networks that reach PyPI through a TLS-inspecting proxy need its CA to build
# (PEM text; the helper script passes the host's /usr/local/share/ca-certificates).
# It is trusted in this stage only and never reaches the runtime image.
ARG EXTRA_CA_CERTS=""
RUN set -eu; \
    if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" >/usr/local/share/ca-certificates/build-extra.crt; \
        update-ca-certificates >/dev/null; \
    fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120

RUN python3 -m venv /opt/holdfast

# Dependencies first, from pyproject.toml alone: editing the code reuses this
# (slow) layer, only a change of dependencies reinstalls them.
COPY pyproject.toml /tmp/pyproject.toml
RUN set -eux; \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        >/tmp/requirements.txt; \
    /opt/holdfast/bin/pip install -r /tmp/requirements.txt

COPY . /src
RUN set -eux; \
    /opt/holdfast/bin/pip install --no-deps /src; \
    /opt/holdfast/bin/pip check; \
    # The catalog migrates itself at start-up from the installed package: make
    # sure the revisions are really in it, not just in the source tree.
    cd /; \
    /opt/holdfast/bin/python -c 'import migrations, pathlib; found = sorted(p.name for p in pathlib.Path(migrations.__file__).parent.glob("versions/*.py") if p.name != "__init__.py"); print("migrations:", found); assert found, "no Alembic revisions installed"'; \
    /opt/holdfast/bin/holdfast --help >/dev/null


FROM ${BASE}

LABEL org.opencontainers.image.title="holdfast" \
      org.opencontainers.image.description="Snapshots and restores for databases running in Docker containers"

RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates; \
    rm -rf /var/lib/apt/lists/*

# A fixed, high uid/gid: no clash with host users, and numeric so that
# orchestrators can verify runAsNonRoot.
RUN set -eux; \
    groupadd --system --gid 10001 holdfast; \
    useradd --system --uid 10001 --gid holdfast --home-dir /var/lib/holdfast \
        --no-create-home --shell /usr/sbin/nologin holdfast; \
    mkdir -p /var/lib/holdfast; \
    chown holdfast:holdfast /var/lib/holdfast; \
    chmod 750 /var/lib/holdfast

COPY --from=build /opt/holdfast /opt/holdfast

ENV PATH=/opt/holdfast/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOLDFAST_DATA_DIR=/var/lib/holdfast \
    HOLDFAST_API_HOST=0.0.0.0

# The embedded SQLite catalog and the `local` target live here. Declared after
# the chown: a new named volume copies this directory's owner, so the
# unprivileged user can write to it.
VOLUME /var/lib/holdfast
WORKDIR /var/lib/holdfast
USER 10001:10001
EXPOSE 8420

# No curl in the image: the probe is the Python that is here anyway. It asks
# 127.0.0.1 on HOLDFAST_API_PORT, so set the port with that variable rather than
# `serve --port`, and keep HOLDFAST_API_HOST at 0.0.0.0 or 127.0.0.1.
# /healthz means "the process is up"; /readyz (catalog and Docker reachable) is
# deliberately not the health check, so an engine restart does not make
# orchestrators kill a daemon that reconnects on its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-I", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HOLDFAST_API_PORT', '8420'), timeout=4)"]

ENTRYPOINT ["holdfast"]
CMD ["serve"]
