"""The interactive API docs, Swagger UI at /docs and ReDoc at /redoc, with their scripts served
from the package that ships them (fastapi-offline's copies of Swagger UI 5 and ReDoc): FastAPI's
own pages load them from a CDN, a blank page on a machine without internet."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
AT = "/docs/assets"


def mount(app: FastAPI) -> None:
    """/docs, /docs/oauth2-redirect, /redoc and their assets (the app made with docs_url and
    redoc_url None)."""
    app.mount(AT, StaticFiles(directory=ASSETS), name="docs-assets")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        spec, assets, root = _urls(request)
        return get_swagger_ui_html(
            openapi_url=spec,
            title=title,
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        spec, assets, _ = _urls(request)
        return get_redoc_html(
            openapi_url=spec,
            title=title,
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )


def _urls(request: Request) -> tuple[str, str, str]:
    """The OpenAPI document's URL, the assets' and the root path (behind a proxy's prefix)."""
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}", f"{root}{AT}", root
