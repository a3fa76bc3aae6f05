"""OpenAPI links: how a value one response gives (a job's id, a snapshot's id, a
copy's name, a token's or a volume's name) feeds the next operation.

They document the flows a client follows (start a backup, then poll its job and
pin its snapshot; make a token, then revoke it) and they are what a stateful
API tester (schemathesis in tests/e2e/test_schemathesis.py) chains requests
with. Each link targets its operation by ``operationRef`` (a JSON pointer to
the path and method), so renaming operation ids changes nothing here; a link
whose source or target operation is not in the document is skipped, so a route
removed later cannot leave a dangling link. :func:`add_links` only adds the
``links`` of success responses and changes nothing else.
"""

from __future__ import annotations

from typing import Any

_JOB = "/v1/jobs/{job_id}"
_SNAPSHOT = "/v1/snapshots/{snapshot_id}"
_COPY = "/v1/copies/{name}"
_VOLUME = "/v1/volumes/{name}"
_INSTANCE = "/v1/instances/{name}"

_JOB_TARGETS = ((_JOB, "get"), (f"{_JOB}/events", "get"), (_JOB, "delete"))
_SNAPSHOT_TARGETS = ((_SNAPSHOT, "get"), (f"{_SNAPSHOT}/pin", "put"),
                     (f"{_SNAPSHOT}/pin", "delete"), (f"{_SNAPSHOT}/restore", "post"),
                     (f"{_SNAPSHOT}/verify", "post"), (_SNAPSHOT, "delete"))
_COPY_TARGETS = ((_COPY, "get"), (_COPY, "patch"),
                 ("/v1/containers/{name}/undo-replace", "post"))
_VOLUME_TARGETS = ((_VOLUME, "get"), (f"{_VOLUME}/clone", "post"), (_VOLUME, "delete"))
_INSTANCE_TARGETS = ((f"{_INSTANCE}/backups", "post"), (f"{_INSTANCE}/restore", "post"),
                     (f"{_INSTANCE}/policy", "put"), (f"{_INSTANCE}/policy", "delete"),
                     (f"{_INSTANCE}/prune", "post"), (_INSTANCE, "delete"))

_Targets = tuple[tuple[str, str], ...]
_LINKS: tuple[tuple[str, str, tuple[str, ...], str, str, _Targets], ...] = (
    # (source path, method, statuses, target parameter, runtime expression, targets)
    ("/v1/instances/{name}/backups", "post", ("200", "202"), "job_id", "$response.body#/id",
     _JOB_TARGETS),
    ("/v1/instances/{name}/backups", "post", ("200", "202"), "snapshot_id",
     "$response.body#/snapshot_id", _SNAPSHOT_TARGETS),
    ("/v1/instances/{name}/restore", "post", ("200", "202"), "job_id", "$response.body#/id",
     _JOB_TARGETS),
    ("/v1/snapshots/{snapshot_id}/restore", "post", ("200", "202"), "job_id",
     "$response.body#/id", _JOB_TARGETS),
    ("/v1/volumes/{name}/clone", "post", ("202",), "job_id", "$response.body#/id", _JOB_TARGETS),
    ("/v1/snapshots/{snapshot_id}/verify", "post", ("200", "202"), "job_id",
     "$response.body#/id", _JOB_TARGETS),
    ("/v1/targets/{name}/verify", "post", ("200", "202"), "job_id", "$response.body#/id",
     _JOB_TARGETS),
    ("/v1/instances/{name}/restore", "post", ("200",), "name",
     "$response.body#/result/container", _COPY_TARGETS),
    ("/v1/snapshots/{snapshot_id}/restore", "post", ("200",), "name",
     "$response.body#/result/container", _COPY_TARGETS),
    ("/v1/jobs", "get", ("200",), "job_id", "$response.body#/0/id", _JOB_TARGETS),
    ("/v1/snapshots", "get", ("200",), "snapshot_id", "$response.body#/0/id",
     _SNAPSHOT_TARGETS),
    ("/v1/copies", "get", ("200",), "name", "$response.body#/0/name", _COPY_TARGETS),
    ("/v1/instances", "get", ("200",), "name", "$response.body#/0/name", _INSTANCE_TARGETS),
    ("/v1/volumes", "post", ("201",), "name", "$response.body#/name", _VOLUME_TARGETS),
    ("/v1/volumes", "get", ("200",), "name", "$response.body#/0/name", _VOLUME_TARGETS),
    ("/v1/tokens", "post", ("201",), "name", "$response.body#/name",
     (("/v1/tokens/{name}", "delete"),)),
    ("/v1/tokens", "get", ("200",), "name", "$response.body#/0/name",
     (("/v1/tokens/{name}", "delete"),)),
)


def _pointer(path: str, method: str) -> str:
    """``#/paths/<path>/<method>`` with the path escaped as RFC 6901 says."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _link_name(path: str, method: str) -> str:
    words = [w.strip("{}") for w in path.split("/") if w and w != "v1"]
    return method.capitalize() + "".join(w.replace("-", " ").title().replace(" ", "")
                                         for w in words)


def add_links(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the links of :data:`_LINKS` on its success responses;
    changed in place and returned. A link already there (by name) is kept."""
    paths = schema.get("paths", {})
    for source, method, statuses, parameter, expression, targets in _LINKS:
        op = paths.get(source, {}).get(method)
        if op is None:
            continue
        for status in statuses:
            response = op.get("responses", {}).get(status)
            if response is None:
                continue
            links = response.setdefault("links", {})
            for path, target_method in targets:
                if target_method not in paths.get(path, {}):
                    continue
                links.setdefault(_link_name(path, target_method), {
                    "operationRef": _pointer(path, target_method),
                    "parameters": {parameter: expression},
                    "description": f"`{parameter}` of this answer, for {target_method.upper()} "
                                   f"{path}",
                })
    return schema
