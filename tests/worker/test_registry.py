"""The platform's jobs, registered by the domains in the order one loop has always run them; the worker
package imports no domain (layers point down: the domains import ``omnibank.worker.registry``)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from omnibank.worker.registry import JOB_MODULES, load_jobs

WORKER = Path(__file__).resolve().parents[2] / "src" / "omnibank" / "worker"
# what the worker may import: infrastructure, and the command line's listings (its `status` command)
INFRASTRUCTURE = ("omnibank.config", "omnibank.db", "omnibank.kit", "omnibank.worker", "omnibank.errors")
INFRASTRUCTURE += ("omnibank.listing",)


def test_the_platforms_jobs_in_the_order_of_a_loop() -> None:
    import omnibank.audit.jobs  # noqa: F401 - imported early (as a command or a test may): it stays last

    jobs = {j.name: j for j in load_jobs()}
    assert list(jobs) == [
        "journeys.apply_log", "journeys.segment_triggers", "journeys.due_steps", "contact.dispatch",
        "leads.escalate", "invites.bind", "service.desk", "surveys.trigger", "cx.alerts", "events.compact",
        "audit.checkpoint",
    ]  # fmt: skip
    assert [n for n, j in jobs.items() if not j.exclusive] == ["journeys.due_steps"]  # SKIP LOCKED claims
    assert [n for n, j in jobs.items() if j.on_stop] == ["audit.checkpoint"]


def test_the_worker_imports_no_domain() -> None:
    for path in sorted(WORKER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            )  # fmt: skip
            for name in names:
                if name.startswith("omnibank"):
                    assert name.startswith(INFRASTRUCTURE), f"{path.name} imports {name}"
    probe = (
        "import sys, omnibank.worker.loop, omnibank.worker.leases, omnibank.worker.cli\n"
        "print(' '.join(m for m in sys.modules if m.startswith('omnibank.')))"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = res.stdout.split()
    assert not [m for m in loaded if not m.startswith(INFRASTRUCTURE)], loaded
    assert JOB_MODULES[0] not in loaded
