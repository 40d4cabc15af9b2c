"""The demo bank's customer-experience desk at the year's end (issue 17): the example surveys invite the
customers whose last days' events trigger one, through the contact policy (fatigue, open complaints), and the
example alert rules run over the last days' events, so `omnibank cx alerts list` shows alerts with their
owners and `omnibank tickets list` the alert tickets, as a live bank would have them. The year's survey
answers, branch visits and the rest are generated with the events (:mod:`omnibank.demo.experience`)."""

from __future__ import annotations

from dataclasses import dataclass

from omnibank.config import Settings
from omnibank.demo.year import Calendar


@dataclass(frozen=True)
class CxYearEnd:
    invited: int
    spared: int
    alerts: int
    tickets: int
    branch_alerts: int
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped:
            return f"体验: {self.skipped}"
        return (
            f"体验: {self.invited} 份问卷邀请 ({self.spared} 份因问卷疲劳或未结投诉未发), "
            f"{self.alerts} 条体验预警 ({self.tickets} 张预警工单, {self.branch_alerts} 条网点预警)"
        )


def run_cx(settings: Settings, *, cal: Calendar) -> CxYearEnd:
    """Survey invitations and alert rules at the demo clock's end, with the examples' files."""
    from omnibank.cx import alerting
    from omnibank.db import unit_of_work
    from omnibank.service.tickets import emit_pending
    from omnibank.surveys.sending import trigger_pass

    folder = settings.cx_maps_folder()
    if folder is None or not (folder / "surveys.yaml").is_file() or not (folder / "alerts.yaml").is_file():
        return CxYearEnd(
            0, 0, 0, 0, 0, skipped="no examples/cx here (an installed copy): surveys and alerts off"
        )
    live = settings.model_copy(
        update={"surveys_file": folder / "surveys.yaml", "cx_alerts_file": folder / "alerts.yaml"}
    )
    with unit_of_work(live) as session:
        report = trigger_pass(session, live, now=cal.end)
    invited = sum(n for k, n in report.invited.items() if not k.startswith("suppress"))
    spared = sum(n for k, n in report.invited.items() if k.startswith("suppress"))
    with unit_of_work(live) as session:
        run = alerting.run_alerts(session, live, now=cal.end)
    emit_pending(live, now=cal.end)
    return CxYearEnd(invited, spared, run.alerts, run.tickets, run.recorded_only)
