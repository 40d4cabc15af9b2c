"""``install(app)``: the console's routes, its static files and its error pages on the API's app."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnibank.api.errors import Unauthorized
from omnibank.console.web import CONSOLE, SignInNeeded, error_page, to_sign_in
from omnibank.errors import AppError, NotFound

#: the page modules under omnibank.console.pages, each with a ``router``
PAGES = ("signin", "home", "customers", "segments", "benefits", "campaigns", "journeys", "marketing", "leads",
         "tickets", "cx", "invites", "contact", "audit", "public", "surveys_public")  # fmt: skip
_PREFIXES = (CONSOLE, "/c/")


def _ours(request: Request) -> bool:
    return request.url.path.startswith(_PREFIXES)


def install(app: FastAPI) -> None:
    for name in PAGES:
        try:
            module = importlib.import_module(f"omnibank.console.pages.{name}")
        except ModuleNotFoundError as exc:  # a page not built yet
            if exc.name != f"omnibank.console.pages.{name}":
                raise
            continue
        app.include_router(module.router, include_in_schema=False)
    app.mount(f"{CONSOLE}/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console")

    api_errors: dict[Any, Any] = dict(app.exception_handlers)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return to_sign_in(request, exc.reason)

    def html_or_api(kind: type[Exception]) -> Any:
        fallback = api_errors[kind]

        async def handler(request: Request, exc: Exception) -> Response:
            if not _ours(request):
                result: Response = fallback(request, exc)
                return result
            if isinstance(exc, Unauthorized):
                return to_sign_in(request)
            if isinstance(exc, AppError):
                return error_page(request, exc)
            if isinstance(exc, RequestValidationError):
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "form"))
                refused = AppError(f"{where}: {first.get('msg', 'invalid')}")
                refused.status = 422
                return error_page(request, refused)
            assert isinstance(exc, StarletteHTTPException)
            refused = NotFound("no such page") if exc.status_code == 404 else AppError(str(exc.detail))
            refused.status = exc.status_code
            return error_page(request, refused)

        return handler

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    for kind in (AppError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(kind, html_or_api(kind))
