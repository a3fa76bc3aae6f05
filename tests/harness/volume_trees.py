"""Seeding and reading file trees inside Docker volumes, for tests that judge
volume copies (clone, volume snapshots) on the files themselves.

Both run in a throwaway container of the local base image with the volume
mounted, as root, so owners and modes are whatever the test set.
"""

from __future__ import annotations

from typing import Any

import docker

from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL

# Owners, modes, a setuid file, a sticky dir, symlinks (relative, absolute,
# dangling), a hard link, an empty dir, odd names and a 64 MiB sparse file
# holding a few bytes.
SEED_TREE = r"""
set -e
cd "$1"
mkdir -p app/conf app/empty uploads/2026/11 'odd name/ü'
printf 'port=5432\n' > app/conf/settings.ini
head -c 300000 /dev/urandom > uploads/2026/11/blob.bin
printf 'x' > 'odd name/ü/file with spaces'
chown -R 1000:1000 app
chown 4242:77 uploads/2026/11/blob.bin
chmod 600 app/conf/settings.ini
chmod 4755 uploads/2026/11/blob.bin
chmod 1777 uploads
ln -s conf/settings.ini app/link-relative
ln -s /etc/hostname app/link-absolute
ln -s missing-target app/link-dangling
ln app/conf/settings.ini app/hardlink.ini
truncate -s 64M sparse.img
printf 'start' | dd of=sparse.img conv=notrunc status=none
printf 'end' | dd of=sparse.img bs=1 seek=60000000 conv=notrunc status=none
chown 0:0 .
chmod 0751 .
"""

# One line per entry: path, type, owner, mode, size, link target, inode (to
# find hard links), allocated KiB; then sha256 of every regular file.
READ_TREE = r"""
cd "$1"
find . -printf '%p\t%y\t%U:%G\t%m\t%s\t%l\t%i\t%k\n' | LC_ALL=C sort
echo '--'
find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
"""


def _run(client: docker.DockerClient, volume: str, script: str) -> str:
    output = client.containers.run(
        HELPER_IMAGE, ["sh", "-c", script, "sh", "/v"], remove=True, network_mode="none",
        volumes={volume: {"bind": "/v", "mode": "rw"}}, labels={TEST_LABEL: "1"},
    )
    return bytes(output).decode("utf-8", "replace")


def seed_tree(client: docker.DockerClient, volume: str) -> None:
    _run(client, volume, SEED_TREE)


def read_tree(client: docker.DockerClient, volume: str) -> dict[str, Any]:
    """The volume's tree as comparable data: per path (type, owner, mode, size,
    link target, hard-link group, sha256) and, apart, allocated KiB per file,
    which only needs to stay small for sparse files."""
    listing, _, sums = _run(client, volume, READ_TREE).partition("--\n")
    digests = {}
    for line in sums.splitlines():
        digest, _, path = line.partition("  ")
        digests[path] = digest
    entries: dict[str, tuple[str, ...]] = {}
    allocated: dict[str, int] = {}
    link_groups: dict[str, int] = {}
    for line in listing.splitlines():
        path, kind, owner, mode, size, target, inode, kib = line.split("\t")
        group = ""
        if kind == "f":
            group = str(link_groups.setdefault(inode, len(link_groups)))
            allocated[path] = int(kib)
        entries[path] = (kind, owner, mode, size if kind != "d" else "",
                         target, group, digests.get(path, ""))
    return {"entries": entries, "allocated_kib": allocated}
