"""`omnibank org …`: the organisation tree."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree
from sqlalchemy import func, select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.kit.console import out
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.orgs import repository
from omnibank.orgs.models import Staff

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@app.command("tree")
def tree(
    depth: int = typer.Option(2, help="How many levels below HQ to show."), fmt: OutputFormat = FormatOpt
) -> None:
    """Print the org tree with staff and customers per node (csv and json: a row per node, depth first; staff
    and customers counted over the node's subtree)."""
    with unit_of_work() as session:
        orgs = repository.all_orgs(session)
        staff: dict[str, int] = {
            org: n for org, n in session.execute(select(Staff.org_id, func.count()).group_by(Staff.org_id))
        }
        per_branch = select(Customer.branch_id, func.count()).group_by(Customer.branch_id)
        custs: dict[str, int] = {org: n for org, n in session.execute(per_branch)}
    if not orgs:
        note(fmt, "no orgs loaded yet (omnibank load orgs FILE)")
        raise typer.Exit(1)
    children: dict[str | None, list[str]] = {}
    for o in sorted(orgs.values(), key=lambda o: o.org_id):
        children.setdefault(o.parent_id, []).append(o.org_id)

    def totals(org_id: str) -> tuple[int, int]:
        s, c = staff.get(org_id, 0), custs.get(org_id, 0)
        for child in children.get(org_id, []):
            cs, cc = totals(child)
            s, c = s + cs, c + cc
        return s, c

    if fmt is not OutputFormat.table:
        rows: list[tuple[object, ...]] = []

        def walk(org_id: str, level: int) -> None:
            o = orgs[org_id]
            rows.append((org_id, o.parent_id, o.name, o.level, level, *totals(org_id)))
            if level < depth:
                for child in children.get(org_id, []):
                    walk(child, level + 1)

        for root in children.get(None, []):
            walk(root, 0)
        columns = (Col("org_id"), Col("parent_id"), Col("name"), Col("level"), Col("depth"), Col("staff"),
                   Col("customers"))  # fmt: skip
        print_rows(columns, rows, fmt)
        return

    def add(node: Tree, org_id: str, level: int) -> None:
        for child in children.get(org_id, []):
            s, c = totals(child)
            branch = node.add(
                f"{escape(child)} {escape(orgs[child].name)} "
                f"[dim]({orgs[child].level}; staff {s}, customers {c:,})[/dim]"
            )
            if level < depth:
                add(branch, child, level + 1)

    for root in children.get(None, []):
        s, c = totals(root)
        label = f"[bold]{escape(root)} {escape(orgs[root].name)}[/bold]"
        t = Tree(f"{label} [dim](staff {s}, customers {c:,})[/dim]")
        add(t, root, 1)
        out.print(t)


staff_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS


@staff_app.command("deactivate")
def deactivate(
    staff: str = typer.Argument(..., help="The staff id of the member of staff who left."),
) -> None:
    """Mark a member of staff as having left: their invite code is revoked (customers bound stay bound)."""
    from datetime import UTC, datetime

    from omnibank.audit.service import cli_actor, record
    from omnibank.errors import NotFound
    from omnibank.invites.codes import revoke_leavers
    from omnibank.orgs.service import mark_left

    now = datetime.now(UTC)
    with unit_of_work() as session:
        if session.get(Staff, staff) is None:
            raise NotFound(f"no staff member {staff} (load staff.csv first)")
        left = mark_left(session, [staff], now=now)
        revoked = revoke_leavers(session, [staff], now=now, actor=cli_actor())
        if left:
            record(session, actor=cli_actor(), action="staff.deactivate", subject_type="staff",
                   subject_id=staff, detail={"codes_revoked": revoked}, at=now)  # fmt: skip
    if not left:
        out.print(f"{escape(staff)} had left already")
        return
    out.print(f"{escape(staff)} marked as left; invite codes revoked: {revoked}")
