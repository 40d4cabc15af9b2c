"""`omnibank consent …`: record and show customers' consent per purpose (PIPL)."""

from __future__ import annotations

import typer

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.consent import service
from omnibank.consent.models import CONSENT_CHANNELS, PURPOSES
from omnibank.db import unit_of_work
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

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
def show(
    customer_id: str = CustomerArg,
    fmt: OutputFormat = FormatOpt,
    history: bool = typer.Option(
        False, "--history", help="With csv and json: the history's records instead of the answer per purpose."
    ),
) -> None:
    """The current answer per purpose and the whole history of the customer's consent (with csv and json,
    the answer per purpose, or with --history the records)."""
    tz = get_settings().tz
    with unit_of_work() as session:
        states = service.current(session, customer_id)
        records = service.history(session, customer_id)
    machine = fmt is not OutputFormat.table
    if not machine or not history:
        rows = []
        for st in states:
            if st.latest is not None:
                when = st.latest.at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
                because = f"{'granted' if st.latest.granted else 'revoked'} {when} via {st.latest.channel}"
            elif st.purpose == "marketing":
                because = "no record: the customer file's marketing flag"
            else:
                because = "no record: the default for this purpose"
            latest = st.latest
            rows.append((customer_id, st.purpose, st.allowed, because, latest.id if latest else None,
                         latest.at if latest else None, latest.channel if latest else None))  # fmt: skip
        now_columns = (
            Col("customer_id", table=False), Col("purpose"), Col("allowed"), Col("because"),
            Col("record_id", table=False), Col("recorded_at", table=False), Col("channel", table=False),
        )  # fmt: skip
        print_rows(now_columns, rows, fmt, title=f"consent of {customer_id}", tz=tz)
    if not machine or history:
        hist_columns = (
            Col("id", "record", show=str), Col("customer_id", table=False),
            Col("at", "time (bank-local)", show=lambda t: t.strftime("%Y-%m-%d %H:%M:%S")), Col("purpose"),
            Col("change"), Col("channel"), Col("evidence"), Col("actor", "by"),
        )  # fmt: skip
        print_rows(
            hist_columns,
            (
                (r.id, customer_id, r.at, r.purpose, "granted" if r.granted else "revoked", r.channel,
                 r.evidence, r.actor)
                for r in records
            ),
            fmt,
            title="history",
            tz=tz,
        )  # fmt: skip
    note(fmt, f"{len(records)} record{'s' if len(records) != 1 else ''}")
