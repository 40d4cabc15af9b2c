"""`omnibank serve`: the HTTP API under uvicorn."""

from __future__ import annotations

import typer

from omnibank.kit.console import err


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs, health at /healthz)."""
    import uvicorn

    from omnibank.app import create_app
    from omnibank.db import ensure_schema

    ensure_schema()
    err.print(f"omnibank API on http://{host}:{port} (docs: /docs)")
    uvicorn.run(
        create_app(), host=host, port=port, log_level="info", server_header=False, proxy_headers=False
    )
