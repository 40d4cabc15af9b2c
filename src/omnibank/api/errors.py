"""The API's error bodies and the one set of handlers: every error is ``{code, message, details}``."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from omnibank.errors import AppError

log = logging.getLogger("omnibank.api")


class FieldIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error response: a stable ``code``, a human ``message`` and ``details`` (for invalid requests,
    the list of fields at fault in ``loc/msg/type`` form)."""

    code: str
    message: str
    details: dict[str, Any] | list[FieldIssue]


class InvalidRequest(AppError):
    code = "invalid_request"
    status = 422


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401


class Forbidden(AppError):
    code = "forbidden"
    status = 403


class RateLimited(AppError):
    code = "rate_limited"
    status = 429


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status = 413


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (400, "The request cannot be carried out"),
        (401, "Not signed in, or the token is invalid or expired"),
        (403, "The caller lacks the permission"),
        (404, "Not found (or not visible to the caller)"),
        (409, "Conflicts with the current state or an earlier request"),
        (410, "Gone (erased)"),
        (413, "The request body is too large"),
        (422, "The request is invalid: details names the fields"),
        (429, "Too many requests: see Retry-After"),
    )
}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"code": code, "message": message, "details": details if details is not None else {}}
    return JSONResponse(body, status_code=status, headers=headers)


def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers: dict[str, str] = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
    if retry is not None:
        headers["Retry-After"] = str(retry)
    status = exc.status if 400 <= exc.status <= 599 else 500
    if status >= 500:
        log.error("%s: %s", exc.code, exc.message)
        return error_response(status, exc.code, "the server is not configured correctly", {})
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _loc(loc: Any) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in loc]


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
              for e in exc.errors()]  # fmt: skip
    first = issues[0] if issues else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return error_response(422, "invalid_request", f"{where}: {first['msg']}{more}", issues)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), {}, dict(exc.headers or {}))


def store_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("the store cannot be used: %s", exc)
    return error_response(503, "store_unavailable", "the database cannot be used right now; try again", {})


def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred; it has been logged", {})


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, store_unavailable)
    app.add_exception_handler(psycopg.OperationalError, store_unavailable)  # the coupon fast path
    app.add_exception_handler(Exception, _unexpected)
