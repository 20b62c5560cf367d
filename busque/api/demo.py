"""The demo page at `/`: type a prompt and watch the answer stream in; upload a photo and watch
an avatar being generated. One static file; it talks to the public API with the key it is given."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from busque.api.strict_json import StrictJsonRoute

router = APIRouter(tags=["demo"], route_class=StrictJsonRoute)

PAGE = Path(__file__).parent / "static" / "demo.html"


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def demo_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))
