"""Loading one of the data contract's files: the one place that picks the loader and its unit of work."""

from __future__ import annotations

from pathlib import Path

from omnibank.config import Settings, get_settings
from omnibank.db import unit_of_work
from omnibank.kit.clock import local_today
from omnibank.kit.loading import LoadReport, LoadRun
from omnibank.security import get_cipher

KINDS = ("orgs", "staff", "customers", "events")


def load_file(
    kind: str, path: Path, *, settings: Settings | None = None, progress: bool = True
) -> LoadReport:
    """Load ``path`` as a contract file of ``kind``; a file that cannot be used raises InputRefused."""
    from omnibank.customers.service import load_customers
    from omnibank.events.loader import load_events
    from omnibank.orgs.service import load_orgs, load_staff

    if kind not in KINDS:
        raise ValueError(f"unknown kind of file {kind!r}; expected one of {', '.join(KINDS)}")
    settings = settings or get_settings()
    cipher = get_cipher(settings)
    if kind == "events":
        return load_events(settings, path, cipher=cipher, progress=progress)
    # one transaction per file; the loaders check every reference themselves before they write
    with LoadRun(settings.loads_dir, kind, path) as run, unit_of_work(settings, bulk_load=True) as session:
        if kind == "orgs":
            load_orgs(session, path, run=run, progress=progress)
        elif kind == "staff":
            load_staff(session, path, run=run, cipher=cipher, progress=progress)
        else:
            today = local_today(settings.tz)
            load_customers(session, path, run=run, cipher=cipher, today=today, progress=progress)
    return run.finish()
