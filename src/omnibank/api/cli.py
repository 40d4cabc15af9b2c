"""`omnibank serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import os

import typer

from omnibank.kit.console import err


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        max=64,
        help="Server processes. On PostgreSQL one per core (the store needs no more than that); SQLite has "
        "one writer at a time, so more do not help there.",
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request."),
) -> None:
    """Serve the HTTP API. OpenAPI at /openapi.json, docs at /docs, health at /healthz."""
    import uvicorn

    from omnibank.db import ensure_schema

    ensure_schema()
    err.print(
        f"omnibank API on http://{host}:{port} (docs: /docs), {workers} process{'es' if workers > 1 else ''}"
        + (f" of {os.cpu_count()} cores" if os.cpu_count() else "")
    )
    # each process builds its app from the environment's settings (as `uvicorn --factory` does)
    uvicorn.run(
        "omnibank.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info",
        access_log=access_log, server_header=False, proxy_headers=False,
    )  # fmt: skip
