"""`omnibank ask "瑞幸券怎么用"`: the answering assistant on the command line (a command of the root)."""

from __future__ import annotations

import typer
from rich.markup import escape

from omnibank.assistant import service
from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.customers.repository import Scope
from omnibank.db import unit_of_work
from omnibank.kit.clock import system_clock
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows


def ask(
    question: str = typer.Argument(..., help="The question, e.g. 瑞幸券怎么用 (quote it)."),
    customer: str = typer.Option(
        None,
        "--customer",
        help="Ask for this customer (e.g. C000123): 我的券… is answered from their coupons.",
    ),
    top: int = typer.Option(3, "--top", min=1, max=service.MAX_TOP, help="Passages to show at most."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Ask the answering assistant (FAQ and benefit terms), any hour. It answers with the best passages and
    their sources, or says it has no confident answer (the question is recorded for the knowledge base's
    owners; asked for a customer, it becomes an inquiry ticket). With csv and json, stdout carries the
    passages (and a customer's coupons) only."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        answer = service.ask(
            session, question, now=system_clock(), settings=settings, actor=cli_actor(), channel="cli",
            source="cli", customer_id=customer, scope=Scope.whole_bank(), top=top,
        )  # fmt: skip
    if not answer.answered:
        note(fmt, f"[yellow]{escape(answer.note)}[/yellow] (question {answer.question_id} recorded)")
        return
    if answer.coupons is not None:
        note(fmt, escape(answer.note))
        print_rows(
            (Col("coupon_id", "coupon", show=str), Col("benefit_name", "benefit"),
             Col("benefit_id", table=False), Col("status"),
             Col("usable", show=lambda v: "yes" if v else "no"),
             Col("valid_to", "valid to", empty="—")),
            [vars(c) for c in answer.coupons], fmt, tz=settings.tz, empty="no coupons",
        )  # fmt: skip
        if fmt is not OutputFormat.table:
            return
    elif answer.note:
        note(fmt, escape(answer.note), style="yellow")
    if fmt is OutputFormat.table:
        for rank, p in enumerate(answer.passages, 1):
            out.print(
                f"[bold]{rank}. {escape(p.title)}[/bold]  [dim]{escape(p.source)} · score {p.score}[/dim]"
            )
            out.print(escape(p.text))
            for n, step in enumerate(p.steps, 1):
                out.print(f"   {n}) {escape(step)}")
            out.print()
        out.print(f"[dim]confidence {answer.confidence} · question {answer.question_id} recorded[/dim]")
        return
    print_rows(
        (Col("rank"), Col("source"), Col("kind"), Col("title"), Col("score"), Col("text"), Col("steps")),
        [{"rank": i, "source": p.source, "kind": p.kind, "title": p.title, "score": p.score, "text": p.text,
          "steps": " / ".join(p.steps)} for i, p in enumerate(answer.passages, 1)],
        fmt,
    )  # fmt: skip
    note(fmt, f"confidence {answer.confidence} · question {answer.question_id} recorded")
