"""The HTTP API: ``create_app()`` wires the routers, the error handlers and the hardening."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import text

from omnibank import __version__
from omnibank.api import errors
from omnibank.api.auth import PrincipalCache
from omnibank.api.fastlane import FastLane
from omnibank.api.logs import install_redaction
from omnibank.api.middleware import BodyLimit, SecurityHeaders
from omnibank.api.ratelimit import TokenBucket
from omnibank.benefits.fastpath import FastPath
from omnibank.config import Settings, get_settings
from omnibank.db import current_revision, get_engine, unit_of_work
from omnibank.kit.clock import system_clock
from omnibank.kit.private import ensure_home, private_files

API_PREFIX = "/api/v1"
#: allocations between two collections of the youngest generation in a server process (default 700)
GC_THRESHOLD = 50_000


class Health(BaseModel):
    status: str
    database: str
    revision: str | None
    version: str


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] = system_clock) -> FastAPI:
    """The application for ``settings`` (default: from the environment); ``clock`` is injectable."""
    from omnibank.assistant.endpoints import router as assistant_router
    from omnibank.audit.endpoints import router as audit_router
    from omnibank.benefits.endpoints import router as benefits_router
    from omnibank.campaigns.endpoints import router as campaigns_router
    from omnibank.contact.endpoints import router as contact_router
    from omnibank.customers.endpoints import router as customers_router
    from omnibank.cx.endpoints import router as cx_router
    from omnibank.events.endpoints import router as events_router
    from omnibank.invites.endpoints import install as install_share
    from omnibank.invites.endpoints import router as invites_router
    from omnibank.journeys.endpoints import router as journeys_router
    from omnibank.leads.endpoints import router as leads_router
    from omnibank.segments.endpoints import router as segments_router
    from omnibank.service.endpoints import router as tickets_router
    from omnibank.surveys.endpoints import router as surveys_router
    from omnibank.users.endpoints import router as users_router

    settings = settings or get_settings()
    private_files()  # the server's files (store, event log, loads of sent events) are 0600, folders 0700
    ensure_home(settings.home_dir)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """While the server runs on PostgreSQL: a background thread chains the audit entries its requests
        append, and the coupon fast path has its pool of connections."""
        from omnibank.audit.service import Checkpoints, start_chainer, stop_chainer

        # sync endpoints run on the thread pool: as many threads as the database pool has connections for
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if settings.api_tune_gc:
            # what the server holds from start-up on (modules, models, the app) is never garbage: left out
            # of the collector's scans, and the scans made rarer; a request allocates much and keeps little
            gc.collect()
            gc.freeze()
            gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
        engine = get_engine(settings)
        if engine.dialect.name == "sqlite":  # one writer at a time: entries are chained in their transaction
            exporting = Checkpoints.of(settings) is not None  # audit checkpoints, at their interval
            if exporting:
                start_chainer(engine, interval=settings.audit_checkpoint_seconds, settings=settings)
            try:
                yield
            finally:
                if exporting:
                    stop_chainer(engine)
            return
        start_chainer(engine, settings=settings)
        fast = FastPath(settings.db_url, size=settings.api_db_connections)
        await fast.open()
        _app.state.fast_path = fast
        try:
            yield
        finally:
            _app.state.fast_path = None
            await fast.close()
            stop_chainer(engine)

    app = FastAPI(
        lifespan=lifespan,
        title="Omnibank API",
        version=__version__,
        description="Customer operations for retail banks. Personal data is masked unless revealed "
        "(a permission, audited); every caller sees the customers of their org subtree.",
        openapi_url="/openapi.json",
        docs_url=None,  # served below from the vendored Swagger UI: no CDN, works offline
        redoc_url=None,
    )
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "api" / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Omnibank API",
            swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/swagger-ui/favicon-32x32.png",
        )

    app.state.settings = settings
    app.state.clock = clock
    app.state.rate_limiter = TokenBucket(settings.api_rate_per_minute)
    app.state.login_limiter = TokenBucket(settings.api_login_per_minute)
    app.state.principal_cache = PrincipalCache(settings.api_auth_cache_seconds)
    app.state.scope_cache = {}
    app.state.auth_inflight = {}  # token checks under way (omnibank.api.auth)
    app.state.lane_served = 0  # requests the fast lane served (omnibank.api.fastlane)
    app.state.fast_path = None
    errors.install(app)
    install_share(app)  # GET /s/{token}: public, outside the API prefix; first, as the busiest route
    from omnibank.console.app import install as install_console

    install_console(app)  # /console for staff and /c/ for customers: HTML pages, HTML error pages
    install_redaction()  # no query string reaches a log line as given (the access log's included)
    # the coupon routes first: FastAPI tries the routers in order, and these carry most of the traffic
    for router in (benefits_router, users_router, customers_router, segments_router, events_router,
                   campaigns_router, journeys_router, contact_router, leads_router,
                   audit_router, invites_router, assistant_router, tickets_router, surveys_router,
                   cx_router):  # fmt: skip
        app.include_router(router, prefix=API_PREFIX)

    @app.get("/healthz", response_model=Health, tags=["health"], responses={503: {"model": errors.ErrorBody}})
    def healthz(request: Request) -> Health:
        """Liveness and the store: answers 503 when the database cannot be used."""
        current: Settings = request.app.state.settings
        with unit_of_work(current) as session:
            session.execute(text("SELECT 1"))
        return Health(status="ok", database="ok", revision=current_revision(current), version=__version__)

    # innermost first (each one added wraps the ones before): the coupon lane inside everything, so its
    # answers get the same headers; the size limit refuses before anything reads the body; headers on
    # every answer
    app.add_middleware(FastLane)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    return app
