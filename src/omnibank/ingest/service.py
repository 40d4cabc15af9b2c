"""Loading one of the data contract's files: the one place that picks the loader and its unit of work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from omnibank.config import Settings, get_settings
from omnibank.db import unit_of_work
from omnibank.kit.clock import local_today
from omnibank.kit.loading import LoadReport, LoadRun, encoding_name
from omnibank.kit.private import ensure_home
from omnibank.security import get_cipher

KINDS = ("orgs", "staff", "customers", "events")


def load_file(
    kind: str, path: Path, *, settings: Settings | None = None, progress: bool = True, encoding: str = "utf-8"
) -> LoadReport:
    """Load ``path`` as a contract file of ``kind`` in ``encoding`` (utf-8, gb18030 or gbk); a file that
    cannot be used raises InputRefused."""
    from omnibank.customers.service import load_customers
    from omnibank.events.loader import load_events
    from omnibank.orgs.service import load_orgs, load_staff

    if kind not in KINDS:
        raise ValueError(f"unknown kind of file {kind!r}; expected one of {', '.join(KINDS)}")
    encoding = encoding_name(encoding)
    settings = settings or get_settings()
    ensure_home(settings.home_dir)  # 0700 when this load creates it
    cipher = get_cipher(settings)
    if kind == "events":
        return load_events(settings, path, cipher=cipher, progress=progress, encoding=encoding)
    # one transaction per file; the loaders check every reference themselves before they write
    with LoadRun(settings.loads_dir, kind, path) as run, unit_of_work(settings, bulk_load=True) as session:
        if kind == "orgs":
            load_orgs(session, path, run=run, progress=progress, encoding=encoding)
        elif kind == "staff":
            report = load_staff(session, path, run=run, cipher=cipher, progress=progress, encoding=encoding)
            if report.extra.get("left"):  # staff who left: their invite codes bind nobody new
                from omnibank.invites.codes import revoke_leavers

                left = report.extra["left"]
                revoked = revoke_leavers(session, left, now=datetime.now(UTC), actor="system:staff-load")
                report.extra["left"] = len(left)
                report.extra["codes_revoked"] = revoked
        else:
            today = local_today(settings.tz)
            load_customers(
                session, path, run=run, cipher=cipher, today=today, progress=progress, encoding=encoding
            )
    return run.finish()
