from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from omnibank.audit.models import AuditEntry
from omnibank.config import get_settings


def cli_actor() -> str:
    settings = get_settings()
    if settings.actor:
        return settings.actor
    try:
        user = os.getlogin()
    except OSError:
        import pwd

        user = pwd.getpwuid(os.getuid()).pw_name
    return f"cli:{user}"


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str | None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry; ``detail`` must never carry personal data in plaintext."""
    entry = AuditEntry(
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        detail=json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
    )
    session.add(entry)
    session.flush()
    return entry
