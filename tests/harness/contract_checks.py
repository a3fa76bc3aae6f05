"""The checks the schemathesis run applies, and one request checked the same way in process.

:data:`CHECKS` is what tests/e2e/test_schemathesis.py asks of every response of
the live daemon: no 5xx, a status the document lists for the operation, a body
that matches the documented schema, the documented content type, and (for a
405) an ``Allow`` naming every method of the path.
:func:`check_call` sends one request to an app in process (FastAPI's ASGI
app over the fakes) and applies the same checks, so a finding of the live run
gets a fast-tier regression test that fails the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.harness.api import AUTH

if TYPE_CHECKING:
    from fastapi import FastAPI
    from schemathesis import Response
    from schemathesis.checks import CheckFunction


def checks() -> list[CheckFunction]:
    """The checks (imported here: the fakes' tier need not load schemathesis)."""
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        allow_header_conformance,
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [not_a_server_error, status_code_conformance, response_schema_conformance,
            content_type_conformance, allow_header_conformance]


def check_call(app: FastAPI, method: str, path: str, **case: Any) -> Response:
    """``method path`` (a path of the document, e.g. ``/v1/jobs/{job_id}``) sent to
    ``app`` with the test token and ``case`` (``path_parameters``, ``query``,
    ``headers``, ``body``); raises schemathesis' failure if a check fails."""
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    call = schema[path][method.upper()].Case(**case)
    return call.call_and_validate(checks=checks(), headers=AUTH)
