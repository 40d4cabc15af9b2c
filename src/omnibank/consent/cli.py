"""`omnibank consent …`: record and show customers' consent per purpose (PIPL)."""

from __future__ import annotations

import typer
from rich.table import Table

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.consent import service
from omnibank.consent.models import CONSENT_CHANNELS, PURPOSES
from omnibank.db import unit_of_work
from omnibank.kit.console import out

app = typer.Typer(
    help=f"Consent per customer and purpose ({', '.join(PURPOSES)}): grant, revoke, show (audited).",
    no_args_is_help=True,
)

CustomerArg = typer.Argument(..., help="The bank's customer number, e.g. C000001.")
PurposeArg = typer.Argument(..., help=f"One of: {', '.join(PURPOSES)}.")
ChannelOpt = typer.Option(
    ..., "--channel", help=f"Where the customer said so: {', '.join(CONSENT_CHANNELS)}."
)
EvidenceOpt = typer.Option(
    "", "--evidence", help="A reference to the proof, e.g. a form id FORM-123 (no personal data)."
)


def _record(customer_id: str, purpose: str, channel: str, evidence: str, *, granted: bool) -> None:
    with unit_of_work() as session:
        rec = service.record_consent(
            session,
            customer_id,
            purpose=purpose,
            granted=granted,
            channel=channel,
            evidence=evidence,
            actor=cli_actor(),
        )
    verb = "granted" if granted else "revoked"
    out.print(f"{customer_id}: {purpose} consent {verb} via {channel} (record {rec.id}); effective now")


@app.command("grant")
def grant(
    customer_id: str = CustomerArg,
    purpose: str = PurposeArg,
    channel: str = ChannelOpt,
    evidence: str = EvidenceOpt,
) -> None:
    """Record that the customer gave consent for a purpose."""
    _record(customer_id, purpose, channel, evidence, granted=True)


@app.command("revoke")
def revoke(
    customer_id: str = CustomerArg,
    purpose: str = PurposeArg,
    channel: str = ChannelOpt,
    evidence: str = EvidenceOpt,
) -> None:
    """Record that the customer withdrew consent for a purpose; it applies at once everywhere."""
    _record(customer_id, purpose, channel, evidence, granted=False)


@app.command("show")
def show(customer_id: str = CustomerArg) -> None:
    """The current answer per purpose and the whole history of the customer's consent."""
    tz = get_settings().tz
    with unit_of_work() as session:
        states = service.current(session, customer_id)
        records = service.history(session, customer_id)
    now = Table("purpose", "allowed", "because", title=f"consent of {customer_id}", title_justify="left")
    for st in states:
        if st.latest is not None:
            when = st.latest.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
            because = f"{'granted' if st.latest.granted else 'revoked'} {when} via {st.latest.channel}"
        elif st.purpose == "marketing":
            because = "no record: the customer file's marketing flag"
        else:
            because = "no record: the default for this purpose"
        now.add_row(st.purpose, "yes" if st.allowed else "no", because)
    out.print(now)
    hist = Table("record", "time (bank-local)", "purpose", "change", "channel", "evidence", "by",
                 title="history", title_justify="left")  # fmt: skip
    for r in records:
        hist.add_row(
            str(r.id),
            r.at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            r.purpose,
            "granted" if r.granted else "revoked",
            r.channel,
            r.evidence,
            r.actor,
        )
    out.print(hist)
    out.print(f"{len(records)} record{'s' if len(records) != 1 else ''}")
