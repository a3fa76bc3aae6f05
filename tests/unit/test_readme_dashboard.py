"""The README's Dashboard section against the code: its screenshots and its pages."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from service.entrypoints.ui import actions, pages

REPO = Path(__file__).resolve().parents[2]


def dashboard_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Dashboard\n")
    return text[start:text.index("\n## ", start + 1)]


def test_the_screenshots_the_readme_shows_are_in_the_repository() -> None:
    images = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", dashboard_section())
    assert len(images) >= 2
    for image in images:
        assert (REPO / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image


def test_every_page_the_readme_names_is_a_route() -> None:
    routes = {route.path for router in (pages.router, actions.router)
              for route in router.routes if isinstance(route, APIRoute)}
    named = set(re.findall(r"`(/ui[^`\s]*)`", dashboard_section()))
    assert named
    for path in named:
        assert path.replace("NAME", "{name}") in routes, path
