"""ASGI hardening: a request body size limit and security headers on every response."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1 << 20  # 1 MiB
MAX_BATCH_BODY = 10 << 20  # 10 MiB for event batches
_BATCH_PATHS = ("/api/v1/events/batch", "/api/v1/campaigns/simulate")


class _TooLarge(Exception):
    pass


def _limit_for(path: str) -> int:
    return MAX_BATCH_BODY if path in _BATCH_PATHS else MAX_BODY


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "code": "payload_too_large",
            "message": f"the request body is larger than {limit} bytes",
            "details": {"limit": limit},
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse (413) a body larger than the limit: by its Content-Length at once, or while it streams."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _limit_for(scope["path"])
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(send, limit)
                    return
                if declared >= 0:
                    # the server reads exactly the declared length as this request's body: nothing to count
                    await self.app(scope, receive, send)
                    return
        seen = 0
        too_large = False
        replaced = False

        async def counted() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_large = True
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            # the framework turns an error while reading the body into its own answer (a 400): once the
            # limit was crossed, whatever it answers is replaced by the 413
            nonlocal replaced
            if too_large:
                if message["type"] == "http.response.start" and not replaced:
                    replaced = True
                    await _send_413(send, limit)
                return
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if not replaced:
                replaced = True
                await _send_413(send, limit)


_COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# the interactive docs: Swagger UI's script and style are served by us (vendored: no CDN, works offline);
# its page starts itself with one inline script
_DOCS_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
)


# the console's pages: scripts only from our own files (vendored htmx and ECharts), no inline script; inline
# styles are allowed (ECharts sizes its canvases with them); forms post only to us
_CONSOLE_CSP = (
    b"content-security-policy",
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
)
_CONSOLE_PREFIXES = ("/console", "/c/")
_SAME_ORIGIN_REFERRER = (b"referrer-policy", b"same-origin")


class SecurityHeaders:
    """Security headers on every response; ``Cache-Control: no-store`` on the API (personal data)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path.startswith("/docs") or path.startswith("/static/")
        console = path.startswith(_CONSOLE_PREFIXES)
        static = path.startswith("/console/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                csp = _CONSOLE_CSP if console else _DOCS_CSP if docs else _API_CSP
                # the console's own forms carry their Origin (checked with the CSRF token); other sites get no
                # referrer
                extra = [*([_SAME_ORIGIN_REFERRER] if console else []), *_COMMON_HEADERS, csp]
                if path.startswith("/api/") or (console and not static):  # personal data: never cached
                    extra.append((b"cache-control", b"no-store"))
                    extra.append((b"pragma", b"no-cache"))
                for name, value in extra:  # the first of a name wins
                    if name not in present:
                        headers.append((name, value))
                        present.add(name)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
