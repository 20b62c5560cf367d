"""The library's web app at `/app/`: static files (busque/api/static/app/, plain ES modules, no
build step) that sign in with an API key and talk to the public API like any client."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from busque.api.strict_json import StrictJsonRoute

FILES = Path(__file__).parent / "static" / "app"

router = APIRouter(tags=["web app"], route_class=StrictJsonRoute)


@router.get("/app", include_in_schema=False)
async def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=308)


def mount(app) -> None:
    """Serve the files under /app/ (index.html for /app/)."""
    app.mount("/app", StaticFiles(directory=FILES, html=True), name="web-app")
