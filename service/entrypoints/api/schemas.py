"""Request bodies of the HTTP API, each with an example. Responses are the use
cases' records as JSON, the same shapes the CLI prints with ``--json``, typed
in :mod:`~service.entrypoints.api.responses`; failures are the problems of
:mod:`~service.entrypoints.api.problems`."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from backup.names import VOLUME_NAME_PATTERN
from backup.tags import parse_tag_args
from backup.volumes import LABEL_KEY_MAX, LABEL_VALUE_MAX, LABELS_MAX
from restore.copies import RestoreOptions
from service.usecases.fleet import RestoreAsked


class BackupBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"tags": {"release": "v1.4.2"}, "pin": True}]})

    target: str | None = Field(default=None, description="storage target; default: the label's")
    tags: dict[StrictStr, StrictStr] = Field(
        default_factory=dict, examples=[{"release": "v1.4.2"}],
        description="tags for the snapshot, also kept in its manifest: at most 32; keys "
                    "1-64 letters, digits and ._/- (starting with a letter or digit), values "
                    "up to 256 printable characters")
    pin: StrictBool = Field(default=False, description="pin the snapshot: retention never "
                            "removes it (DELETE /v1/snapshots/{id}/pin unpins it)")

    def options(self) -> dict[str, Any]:
        """``target``, ``tags`` and ``pin`` as :func:`prepare_backup` takes them."""
        return {"target": self.target, "tags": self.tags, "pin": self.pin}


class RestoreBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci-db", "ttl": "4h", "publish": 0, "labels": {"ci.pipeline": "1234"}},
        {"replace": "prod-db"}]})

    name: str | None = Field(default=None, description="name of the fresh container to "
                             "create (needed unless replace is given)")
    replace: str | None = Field(
        default=None, examples=["prod-db"],
        description="swap the restore in for this container: restored into a fresh "
                    "container first, then, once ready and loaded, the old one is stopped "
                    "and kept as NAME-replaced-<time>, and the new one takes its name, "
                    "networks, aliases, published ports, labels and restart policy "
                    "(POST /v1/containers/{name}/undo-replace swaps back)")
    image: str | None = Field(default=None, description="image to use instead of the recorded one")
    force: bool = Field(default=False, description="replace the contents of existing volumes "
                        "NAME-* (never of one a container uses)")
    ttl: str | None = Field(default=None, examples=["4h"], description="remove the copy "
                            "(container and the volumes it created) this long after it is "
                            "ready: 1m to 365d, digits and s, m, h or d")
    network: str | None = Field(default=None, examples=["ci-net"], description="an existing "
                                "Docker network to join instead of the recorded ones")
    alias: str | None = Field(default=None, examples=["db"], description="the container's "
                              "DNS alias on network (needs network)")
    publish: StrictInt | StrictStr | None = Field(
        default=None, examples=[0, 5433, "0.0.0.0:5433"],
        description="publish the database's port on the host: 0 for a free port, 1-65535 "
                    "for that one, bound to 127.0.0.1 unless given as HOST:PORT")
    labels: dict[str, str] = Field(default_factory=dict, examples=[{"ci.pipeline": "1234"}],
                                   description="extra container labels; keys may not start "
                                   "with holdfast.")
    warm: bool = Field(default=True, description="clone the volumes of a warm copy of the "
                       "snapshot when the engine has one (reflinks where its filesystem "
                       "has them), instead of streaming the snapshot; false always streams")
    host: str | None = Field(default=None, examples=["edge-2"], description="the host "
                             "(GET /v1/hosts) whose engine the copy is made on, reading the "
                             "snapshot from a target both share; default: this daemon's")

    @model_validator(mode="after")
    def _name_or_replace(self) -> RestoreBody:
        if self.name is None and self.replace is None:
            raise ValueError("name the fresh container (name), or give replace to swap "
                             "the restore in for a container")
        return self

    def options(self) -> RestoreOptions:
        """The copy options in this body, for the use case to check."""
        return RestoreOptions(network=self.network, alias=self.alias, publish=self.publish,
                              labels=self.labels, ttl=self.ttl, warm=self.warm)

    def asked(self, snapshot: str | None, latest_of: str | None = None) -> RestoreAsked:
        """The restore this body asks for, of ``snapshot`` (or the newest of
        ``latest_of``, carrying the body's tag if it has one)."""
        return RestoreAsked(snapshot=snapshot, name=self.name, image=self.image,
                            force=self.force, options=self.options(), replace=self.replace,
                            host=self.host, latest_of=latest_of, tags=self.tag_filter())

    def tag_filter(self) -> dict[str, str] | None:
        """The tags the snapshot restored must carry (none: any)."""
        return None


class InstanceRestoreBody(RestoreBody):
    """A restore of an instance's newest complete snapshot, or of its newest
    complete snapshot carrying ``tag``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci-db", "tag": "release:v1.4.2", "ttl": "4h", "publish": 0}]})

    tag: StrictStr | None = Field(
        default=None, examples=["release:v1.4.2"],
        description="restore the newest complete snapshot carrying this tag, given as "
                    "KEY:VALUE (split at the first ':'; the value may hold more)")

    def tag_filter(self) -> dict[str, str] | None:
        """``tag`` as a filter; :class:`~backup.errors.InvalidInput` if malformed."""
        return parse_tag_args([self.tag], ":") if self.tag is not None else None


_PLAIN_TEXT = r"^[^\u0000-\u001f\u007f-\u009f]*$"
VOLUME_LABELS_SCHEMA: dict[str, Any] = {
    "maxProperties": LABELS_MAX,
    "propertyNames": {"minLength": 1, "maxLength": LABEL_KEY_MAX, "pattern": _PLAIN_TEXT},
    "additionalProperties": {"type": "string", "maxLength": LABEL_VALUE_MAX,
                             "pattern": _PLAIN_TEXT},
}
"""What :func:`backup.volumes.check_volume_labels` takes, as JSON Schema: no
control character (Unicode category Cc) in a key or a value."""


class VolumeBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "shop-data", "labels": {"team": "shop"}}]})

    name: str = Field(description="name of the new volume",
                      json_schema_extra={"pattern": VOLUME_NAME_PATTERN})
    labels: dict[str, str] = Field(default_factory=dict,
                                   json_schema_extra=VOLUME_LABELS_SCHEMA)


class CloneBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"target": "shop-data-copy", "force": False}]})

    target: str = Field(description="name of the volume to copy into",
                        json_schema_extra={"pattern": VOLUME_NAME_PATTERN})
    force: bool = Field(default=False, description="replace the target's contents if it "
                        "exists (never while a container uses it)")


class PolicyBody(BaseModel):
    """Any subset of the labels' policy, in label syntax; given fields override the labels."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"schedule": "@every 6h", "retention": "last=3,daily=7"}]})

    schedule: str | None = Field(default=None, examples=["@every 6h", "0 3 * * *"])
    retention: str | None = Field(default=None, examples=["last=3,daily=7"])
    target: str | None = None
    databases: str | None = Field(default=None, examples=["app,reports"])
    verify: str | None = Field(default=None, description="when the daemon runs a verified "
                               "restore of the newest complete snapshot: a schedule, or "
                               "after-backup", examples=["@weekly", "after-backup"])
    notify: str | None = Field(default=None, description="the notification channels its "
                               "events go to (a comma list of configured channel names)",
                               examples=["ops,pager"])
    stale_after: str | None = Field(default=None, description="how long without a complete "
                                    "snapshot before backup.stale fires",
                                    examples=["26h", "90m"])
    jobs: str | None = Field(default=None, description="Postgres: processes one dump runs at "
                             "once, 1 to 16 (above 1: the parallel format)", examples=["2"])
    mode: str | None = Field(default=None, description="Postgres: logical (SQL dumps) or "
                             "physical (the server's files)", examples=["physical"])


class WarmBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"snapshot": "20261203T0500"}]})

    snapshot: str | None = Field(default=None, description="the snapshot (id or unambiguous "
                                 "prefix) the warm copy is to hold; default: the newest "
                                 "complete one that passed a verified restore, else the "
                                 "newest complete one")


def backup_request(name: str, body: BackupBody) -> dict[str, Any]:
    """A backup request as another host's daemon parses it back (no secrets)."""
    return {"name": name, "body": body.model_dump(mode="json")}


def restore_request(body: RestoreBody) -> dict[str, Any]:
    """A restore request as another host's daemon parses it back (no secrets);
    the snapshot's id is added where it is resolved."""
    return {"body": body.model_dump(mode="json", exclude={"host"})}
