"""The `omnibank` command.

Each command's module is imported when that command runs, not before: the domains, FastAPI, pyarrow, numpy
and SQLAlchemy cost 2–3 s and 270 MB to import, which every command (and ``--help``) used to pay. The root
knows each command by name, module and one-line help (:data:`COMMANDS`); ``omnibank --help`` lists them
from there and imports nothing. ``benchmarks/bench_cli.py`` measures the start-up.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NamedTuple

import typer
from typer.core import TyperCommand, TyperGroup

from omnibank import __version__
from omnibank.errors import AppError


class Lazy(NamedTuple):
    """A command of the root: ``module:attribute`` (a Typer app or a command function) and its help."""

    target: str
    help: str


#: The root's commands in the order ``--help`` lists them, with their help: a group's lives here only, a
#: command function's docstring begins with it. ``--help`` shows the first sentence (keep it short).
COMMANDS: dict[str, Lazy] = {
    "db": Lazy("omnibank.cli:db_app", "The operational store: migrations."),
    "load": Lazy(
        "omnibank.ingest.cli:app",
        "Load the data contract's files. Orgs, staff, customers and events, in that order.",
    ),
    "customer": Lazy(
        "omnibank.customers.cli:app",
        "Customers: find, show, merge, export, erase. Find one by phone or ID number, show the profile "
        "(masked), merge two into one, export or erase one on the customer's request.",
    ),
    "org": Lazy("omnibank.orgs.cli:app", "The organisation tree (HQ → branch → sub-branch → team)."),
    "demo": Lazy(
        "omnibank.demo.cli:app",
        "A synthetic demo bank (衡水银行). Generate the contract files, load them and run the bank's year.",
    ),
    "segment": Lazy(
        "omnibank.segments.cli:app",
        "Segments (客群): count, preview, export, save, snapshot. Written in the expression language, "
        "e.g. \"age >= 60 AND events('app.login', 90) = 0\".",
    ),
    "export": Lazy(
        "omnibank.segments.cli:export_app",
        "Export for other engines: customers' non-personal attributes as Parquet (Spark).",
    ),
    "events": Lazy("omnibank.events.cli:app", "The event log (append-only Parquet under the data home)."),
    "tags": Lazy("omnibank.tags.cli:app", "Tags (标签): YAML definitions, computed in batch with history."),
    "campaign": Lazy(
        "omnibank.campaigns.cli:app",
        "Campaigns whose rules are data. Validate, simulate (backtest), start, run, stop, list, grants.",
    ),
    "benefits": Lazy(
        "omnibank.benefits.cli:benefits_app",
        "Benefits (权益): the catalogue and its stock. The catalogue from YAML, stock lots, what customers "
        "are shown.",
    ),
    "suppliers": Lazy(
        "omnibank.benefits.cli:suppliers_app", "Suppliers: stock sync, issue results, the scorecard."
    ),
    "coupons": Lazy(
        "omnibank.benefits.cli:coupons_app", "The coupon ledger: list, claim, redeem, revoke (audited)."
    ),
    "points": Lazy("omnibank.benefits.cli:points_app", "The points ledger: balances and their verification."),
    "budgets": Lazy(
        "omnibank.benefits.cli:budgets_app", "Budgets per campaign, rule or branch (items and face value)."
    ),
    "contact": Lazy("omnibank.contact.cli:app", "Channels, the contact policy, the outbox, do-not-disturb."),
    "journey": Lazy("omnibank.journeys.cli:app", "Journeys: validate, simulate, start, stop, list, report."),
    "worker": Lazy("omnibank.worker.cli:app", "Run journeys and the outbox in the background."),
    "invites": Lazy(
        "omnibank.invites.cli:app",
        "Staff invite codes (邀请码): issue, revoke, rotate, export; bindings, stats, leaderboard, rewards.",
    ),
    "share": Lazy(
        "omnibank.invites.cli:share_app", "Share links and posters for staff: /s/ links, QR codes, stats."
    ),
    "calendar": Lazy(
        "omnibank.service.cli:calendar_app",
        "The bank's business calendar: working hours, holidays and adjusted working days (调休), due times.",
    ),
    "tickets": Lazy(
        "omnibank.service.cli:tickets_app",
        "Service desk tickets: open, list, assign, answer, move; import history; SLA report; escalation.",
    ),
    "cx": Lazy(
        "omnibank.cx.cli:app",
        "Customer experience: journey-map index, survey results, feedback topics, alerts, funnels.",
    ),
    "process": Lazy(
        "omnibank.process.cli:app", "Process lead times over events sharing a case id (e.g. a loan's steps)."
    ),
    "ask": Lazy(
        "omnibank.assistant.cli:ask", "Ask the answering assistant (FAQ and benefit terms), any hour."
    ),
    "staff": Lazy("omnibank.orgs.cli:staff_app", "Staff: deactivate a member of staff who left."),
    "model": Lazy(
        "omnibank.marketing.cli:app", "Propensity and uplift models: train, score, list, show, retire."
    ),
    "calllist": Lazy(
        "omnibank.marketing.calllist_cli:calllist_cmd",
        "Call lists for AI outbound: the top customers by a model, through the contact policy, with a "
        "holdout.",
    ),
    "leads": Lazy("omnibank.leads.cli:app", "Leads for branch staff: the RM's list, follow-up, escalation."),
    "user": Lazy("omnibank.users.cli:user_app", "Staff accounts that sign in to the API."),
    "token": Lazy("omnibank.users.cli:token_app", "API tokens for integrations (scoped, expiring)."),
    "serve": Lazy("omnibank.api.cli:serve", "Serve the HTTP API."),
    "audit": Lazy("omnibank.audit.cli:app", "The audit trail: who read or changed what, from where and why."),
    "consent": Lazy(
        "omnibank.consent.cli:app", "Consent per customer and purpose (audited). Grant, revoke, show."
    ),
    "keys": Lazy(
        "omnibank.security.cli:app",
        "Encryption keys: status, rotate, retire. Rotation re-encrypts every personal field.",
    ),
    "backup": Lazy("omnibank.ops.cli:backup_cmd", "Back up the store and the event log, consistently."),
    "restore": Lazy(
        "omnibank.ops.cli:restore_cmd", "Restore a backup, after verifying its signature and every checksum."
    ),
    "backup-sign": Lazy(
        "omnibank.ops.cli:backup_sign_cmd", "Sign the manifest of a backup made before backups were signed."
    ),
    "version": Lazy("omnibank.cli:version", "Print the version."),
}


class _Placeholder(TyperCommand):
    """A root command not imported yet: enough to list it in ``--help`` and to suggest it for a typo."""


def load_command(name: str, entry: Lazy) -> Any:
    """Import a root command and turn it into its Click command, named and helped as :data:`COMMANDS` says."""
    module, _, attribute = entry.target.partition(":")
    obj = getattr(importlib.import_module(module), attribute)
    holder = typer.Typer(add_completion=False, rich_markup_mode=None)
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name, help=entry.help)
        return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]
    holder.command(name)(obj)  # a command function: its docstring is its help
    return typer.main.get_command(holder)  # a one-command app is that command


class _Root(TyperGroup):
    """Loads each command when it runs; turns an AppError anywhere below into its message on stderr and exit
    code 1, never a traceback (a database that cannot be used likewise)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = {name: _Placeholder(name=name, help=entry.help) for name, entry in COMMANDS.items()}
        self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Placeholder) and not self._listing:
            command = self.commands[cmd_name] = load_command(cmd_name, COMMANDS[cmd_name])
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True  # the list of commands comes from COMMANDS: nothing is imported for it
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: Any) -> Any:
        from omnibank.kit.private import private_files

        private_files()  # every file a command creates is 0600, every folder 0700 (omnibank.kit.private)
        try:
            return super().invoke(ctx)
        except AppError as exc:
            _fail(exc.message)
        except Exception as exc:
            sa = sys.modules.get("sqlalchemy.exc")  # not imported: the error cannot be one of its kind
            if sa is None or not isinstance(exc, sa.OperationalError):
                raise
            reason = str(exc.orig or exc).strip().splitlines()[0]
            _fail(f"the database cannot be used: {reason} (see OMNIBANK_DATABASE_URL)")


def _fail(message: str) -> None:
    from rich.markup import escape

    from omnibank.kit.console import err

    err.print(f"[red]error:[/red] {escape(message)}")  # a message is text: brackets in it are kept
    raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="omnibank",
    help="Omnibank — customer operations for retail banks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def root() -> None:
    """Omnibank — customer operations for retail banks."""


db_app = typer.Typer(no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (they also apply themselves on first use)."""
    from omnibank import db
    from omnibank.kit.console import out

    db.upgrade()
    out.print(f"database at revision {db.current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from omnibank import db
    from omnibank.kit.console import out

    out.print(str(db.current_revision() or "empty (run: omnibank db upgrade)"))


def version() -> None:
    """Print the version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        from omnibank.kit.console import err

        err.print("interrupted; nothing of the current step was committed")
        sys.exit(130)
