"""The `omnibank` command."""

from __future__ import annotations

import sys
from typing import Any

import typer
from sqlalchemy.exc import OperationalError
from typer.core import TyperGroup

from omnibank import __version__
from omnibank.api.cli import serve
from omnibank.audit.cli import app as audit_app
from omnibank.benefits.cli import benefits_app, budgets_app, coupons_app, points_app, suppliers_app
from omnibank.campaigns.cli import app as campaign_app
from omnibank.consent.cli import app as consent_app
from omnibank.contact.cli import app as contact_app
from omnibank.customers.cli import app as customer_app
from omnibank.demo.cli import app as demo_app
from omnibank.errors import AppError
from omnibank.events.cli import app as events_app
from omnibank.ingest.cli import app as load_app
from omnibank.journeys.cli import app as journey_app
from omnibank.journeys.cli import worker as journey_worker
from omnibank.kit.console import err, out
from omnibank.leads.cli import app as leads_app
from omnibank.ops.cli import backup_cmd, restore_cmd
from omnibank.orgs.cli import app as org_app
from omnibank.security.cli import app as keys_app
from omnibank.segments.cli import app as segment_app
from omnibank.tags.cli import app as tags_app
from omnibank.users.cli import token_app, user_app


class _Root(TyperGroup):
    """Turns an AppError anywhere below into its message on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AppError as exc:
            err.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            err.print(f"[red]error:[/red] the database cannot be used: {reason} (see OMNIBANK_DATABASE_URL)")
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="omnibank",
    help="Omnibank — customer operations for retail banks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The operational store.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations (they also apply themselves on first use)."""
    from omnibank import db

    db.upgrade()
    out.print(f"database at revision {db.current_revision()}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from omnibank import db

    out.print(str(db.current_revision() or "empty (run: omnibank db upgrade)"))


@app.command("version")
def version() -> None:
    """Print the version."""
    out.print(__version__)


app.add_typer(db_app, name="db")
app.add_typer(load_app, name="load")
app.add_typer(customer_app, name="customer")
app.add_typer(org_app, name="org")
app.add_typer(demo_app, name="demo")
app.add_typer(segment_app, name="segment")
app.add_typer(events_app, name="events")
app.add_typer(tags_app, name="tags")
app.add_typer(campaign_app, name="campaign")
app.add_typer(benefits_app, name="benefits")
app.add_typer(suppliers_app, name="suppliers")
app.add_typer(coupons_app, name="coupons")
app.add_typer(points_app, name="points")
app.add_typer(budgets_app, name="budgets")
app.add_typer(contact_app, name="contact", help="Channels, the contact policy, the outbox, do-not-disturb.")
app.add_typer(journey_app, name="journey", help="Journeys: validate, simulate, start, stop, report.")
app.command("worker")(journey_worker)
app.add_typer(leads_app, name="leads", help="Leads for branch staff.")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.command("serve")(serve)
app.add_typer(audit_app, name="audit")
app.add_typer(consent_app, name="consent")
app.add_typer(keys_app, name="keys")
app.command("backup")(backup_cmd)
app.command("restore")(restore_cmd)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; nothing of the current step was committed")
        sys.exit(130)
