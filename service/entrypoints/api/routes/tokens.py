"""``/v1/tokens``: API tokens made, listed and revoked (the ``admin`` scope).

``POST`` answers 201 with the token's secret, the only time it is shown; the
catalog keeps its sha256. Listings never carry a secret or a hash. A revoked
token is refused on its next request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from backup.types import utcnow
from service.entrypoints.api.deps import ADMIN, AUTHORISED, ServicesDep, principal
from service.entrypoints.api.openapi import errors
from service.tokens import NAME_MAX, NAME_PATTERN
from service.usecases import tokens
from service.usecases.tokens import Principal

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], dependencies=AUTHORISED)

ScopeName = Literal["read", "backup", "restore", "admin"]


class TokenBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci", "scopes": ["backup", "read"], "expires": "90d"}]})

    name: str = Field(max_length=NAME_MAX, examples=["ci"], description="1-64 letters, "
                      "digits, '.', '_' or '-', starting with a letter or digit; unique",
                      json_schema_extra={"pattern": NAME_PATTERN})
    scopes: list[ScopeName] = Field(min_length=1, max_length=4, examples=[["backup", "read"]],
                                    description="admin implies all the others")
    expires: str | None = Field(default=None, examples=["90d"], description="expire this long "
                                "from now: 1m to 3650d, digits and m, h or d; null: never")


class TokenCreated(BaseModel):
    """The new token, with its secret: shown here and never again."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci", "scopes": ["read", "backup"], "expires_at": "2027-03-03T05:00:00Z",
         "token": "hf_3q2mXb7Kc9TzR1vW5yL8nQ0aE4sD6fG2hJ"}]})

    name: str = Field(examples=["ci"])
    scopes: list[ScopeName] = Field(examples=[["read", "backup"]])
    expires_at: str | None = Field(examples=["2027-03-03T05:00:00Z"])
    token: str = Field(examples=["hf_3q2mX..."], description="send as Authorization: Bearer")


class TokenOut(BaseModel):
    """A token as listed: never its secret or hash."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "ci", "scopes": ["read", "backup"], "created_by": "token:bootstrap",
         "created_at": "2026-12-03T05:00:00Z", "last_used_at": "2026-12-03T06:12:00Z",
         "expires_at": "2027-03-03T05:00:00Z"}]})

    name: str = Field(examples=["ci"])
    scopes: list[ScopeName] = Field(examples=[["read", "backup"]])
    created_by: str | None = Field(description="the token (or CLI user) that made it")
    created_at: str
    last_used_at: str | None = Field(description="to the minute: uses are written at most "
                                     "once a minute")
    expires_at: str | None


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=ADMIN,
             responses=errors(400, 409))
def create_token(svc: ServicesDep, body: TokenBody,
                 who: Annotated[Principal, Depends(principal)]) -> TokenCreated:
    """Make a token; the answer holds its secret, which is never shown again.
    A name in use is 409."""
    made = tokens.create_token(svc, body.name, body.scopes, body.expires,
                               created_by=f"token:{who.name}", now=utcnow())
    return TokenCreated.model_validate(made.to_json())


@router.get("", dependencies=ADMIN)
def list_tokens(svc: ServicesDep) -> list[TokenOut]:
    """Every token by name, with scopes, creator, last use and expiry."""
    return [TokenOut.model_validate(t.to_json()) for t in tokens.list_tokens(svc)]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=ADMIN,
               responses=errors(404))
def revoke_token(svc: ServicesDep, name: str) -> Response:
    """Revoke a token: its next request is refused (401)."""
    tokens.revoke_token(svc, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
