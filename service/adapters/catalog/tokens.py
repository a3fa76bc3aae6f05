"""The catalog's ``api_tokens`` table: API tokens as :class:`~service.tokens.TokenRecord`.

:class:`TokenRows` is mixed into :class:`~service.adapters.catalog.repository.Catalog`
and uses its short sessions, like the rest of the repository: plain records in
and out, one statement per write. A token is found by the sha256 of its secret
(a unique column); the secret itself never reaches the database.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backup.errors import NameTaken
from service.adapters.catalog.models import ApiTokenRow
from service.tokens import TokenRecord


class TokenRows:
    """The tokens part of the catalog (see :class:`service.ports.TokenStore`)."""

    def _session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Catalog's own

    def add_token(self, t: TokenRecord) -> None:
        try:
            with self._session() as session:
                session.execute(insert(ApiTokenRow).values(
                    name=t.name, token_hash=t.token_hash, scopes=list(t.scopes),
                    created_by=t.created_by, created_at=t.created_at,
                    last_used_at=t.last_used_at, expires_at=t.expires_at))
        except IntegrityError as error:
            raise NameTaken(f"a token named {t.name!r} exists already; revoke it first "
                            "(holdfast tokens revoke) or choose another name") from error

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        with self._session() as session:
            row = session.scalars(select(ApiTokenRow).where(
                ApiTokenRow.token_hash == token_hash)).first()
            return None if row is None else _record(row)

    def list_tokens(self) -> list[TokenRecord]:
        with self._session() as session:
            return [_record(row) for row in session.scalars(
                select(ApiTokenRow).order_by(ApiTokenRow.name))]

    def delete_token(self, name: str) -> bool:
        with self._session() as session:
            result = session.execute(delete(ApiTokenRow).where(ApiTokenRow.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def touch_token(self, name: str, at: datetime) -> None:
        with self._session() as session:
            session.execute(update(ApiTokenRow).where(ApiTokenRow.name == name)
                            .values(last_used_at=at))


def _record(row: ApiTokenRow) -> TokenRecord:
    return TokenRecord(name=row.name, token_hash=row.token_hash, scopes=tuple(row.scopes),
                       created_by=row.created_by, created_at=row.created_at,
                       last_used_at=row.last_used_at, expires_at=row.expires_at)
