"""The audit trail's background job: a checkpoint (the last seal, signed) exported every
``OMNIBANK_AUDIT_CHECKPOINT_SECONDS`` to the place configured off the data volume, and once more when the
worker stops, so the last entries are covered. Only where a checkpoint place is configured.

(The worker used to run the audit chainer's thread for this; the worker's schedule and lease now do the
timing, and the entries a worker appends are chained as each of its transactions commits.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from omnibank.audit.service import Checkpoints
from omnibank.config import Settings
from omnibank.worker.registry import Job, JobResult, Limits, register

_exporters: dict[tuple[str, str], Checkpoints] = {}  # one per store and place: it knows what it exported


def checkpoint(settings: Settings, _now: datetime, _limits: Limits) -> JobResult:
    from omnibank.audit.keyed import audit_key
    from omnibank.db import get_engine

    where = (settings.db_url, f"{settings.audit_checkpoint_path}|{settings.audit_checkpoint_url}")
    exporter = _exporters.get(where)
    if exporter is None:
        exporter = _exporters[where] = Checkpoints(settings)
    with get_engine(settings).connect() as conn:
        exported = exporter.maybe_export(conn, audit_key(settings), force=True)
    return JobResult({"checkpoints": int(exported)})


register(
    Job(
        name="audit.checkpoint",
        run=checkpoint,
        every=lambda s: timedelta(seconds=s.audit_checkpoint_seconds),
        when=lambda s: Checkpoints.of(s) is not None,
        on_stop=True,
    )
)
