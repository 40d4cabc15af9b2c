"""One error base with a stable code, an HTTP status and a human message."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class NotFound(AppError):
    code = "not_found"
    status = 404


class CustomerErased(AppError):
    """The customer was erased (data rights): its personal data no longer exists."""

    code = "customer_erased"
    status = 410


class InputRefused(AppError):
    """A whole input (file, config) cannot be used; nothing of it was applied."""

    code = "input_refused"
    status = 422


class Conflict(AppError):
    code = "conflict"
    status = 409


class MergeRefused(Conflict):
    """Two customers cannot be merged (unknown, the same, or one already merged away)."""

    code = "merge_refused"


class ConfigError(AppError):
    code = "config_error"
    status = 500
