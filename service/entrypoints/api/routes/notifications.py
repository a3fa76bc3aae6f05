"""``/v1/notifications``: recent deliveries and their outcome, the configured
channels, and a test message to one channel.

Listing is the ``read`` scope; a test message reaches outside the daemon, so
it is ``admin``. A channel is shown by name, kind, scheme and host: its URL's
path, user, token and secret stay in the daemon's environment.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from service.entrypoints.api.deps import ADMIN, AUTHORISED, READ, ServicesDep
from service.entrypoints.api.openapi import errors
from service.entrypoints.api.responses import Channel, Delivery, DeliveryState
from service.records import DeliveryStatus
from service.usecases import notifications

router = APIRouter(prefix="/v1/notifications", tags=["notifications"], dependencies=AUTHORISED)

NAME_MAX = 64


class TestBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"channel": "ops"}]})

    channel: str = Field(min_length=1, max_length=NAME_MAX, examples=["ops"],
                         description="a channel's name, as in HOLDFAST_NOTIFY_<NAME>")


@router.get("", dependencies=READ, response_model=list[Delivery], responses=errors(400))
def list_notifications(
    svc: ServicesDep,
    channel: Annotated[str | None, Query(max_length=NAME_MAX + 5,
                                         description="only to this channel, or ping:<instance>"
                                         )] = None,
    event: Annotated[str | None, Query(max_length=NAME_MAX,
                                       description="only of this event")] = None,
    instance: Annotated[str | None, Query(max_length=NAME_MAX,
                                          description="only about this instance")] = None,
    delivery_status: Annotated[DeliveryState | None, Query(
        alias="status", description="only in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=notifications.MAX_DELIVERY_LIST,
                                description="at most this many (1 to 1000)")] = 100,
) -> list[dict[str, Any]]:
    """Recent notification and ping deliveries, newest first, with their outcome."""
    wanted = DeliveryStatus(delivery_status) if delivery_status else None
    return [d.to_json() for d in notifications.list_deliveries(
        svc.catalog, limit=limit, channel=channel, event=event, instance=instance,
        status=wanted)]


@router.get("/channels", dependencies=READ, response_model=list[Channel])
def list_channels(svc: ServicesDep) -> list[dict[str, Any]]:
    """The configured channels: name, kind, scheme and host, events, signed or not."""
    return notifications.describe_channels(svc.settings.notify_channels)


@router.post("/test", dependencies=ADMIN, response_model=Delivery,
             responses=errors(400, 404, 503))
def send_test(svc: ServicesDep, body: TestBody) -> dict[str, Any]:
    """Send a test message to one channel now and answer with its delivery; a
    channel that refuses or cannot be reached is 503 with the reason (the
    failure is recorded too), an unknown one 404."""
    return notifications.test_channel(svc, body.channel).to_json()
