"""`omnibank org …`: the organisation tree."""

from __future__ import annotations

import typer
from rich.tree import Tree
from sqlalchemy import func, select

from omnibank.customers.models import Customer
from omnibank.db import unit_of_work
from omnibank.kit.console import out
from omnibank.orgs import repository
from omnibank.orgs.models import Staff

app = typer.Typer(help="The organisation tree (HQ → branch → sub-branch → team).", no_args_is_help=True)


@app.command("tree")
def tree(depth: int = typer.Option(2, help="How many levels below HQ to show.")) -> None:
    """Print the org tree with staff and customers per node."""
    with unit_of_work() as session:
        orgs = repository.all_orgs(session)
        staff: dict[str, int] = {
            org: n for org, n in session.execute(select(Staff.org_id, func.count()).group_by(Staff.org_id))
        }
        per_branch = select(Customer.branch_id, func.count()).group_by(Customer.branch_id)
        custs: dict[str, int] = {org: n for org, n in session.execute(per_branch)}
    if not orgs:
        out.print("no orgs loaded yet (omnibank load orgs FILE)")
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

    def add(node: Tree, org_id: str, level: int) -> None:
        for child in children.get(org_id, []):
            s, c = totals(child)
            branch = node.add(
                f"{child} {orgs[child].name} [dim]({orgs[child].level}; staff {s}, customers {c:,})[/dim]"
            )
            if level < depth:
                add(branch, child, level + 1)

    for root in children.get(None, []):
        s, c = totals(root)
        t = Tree(f"[bold]{root} {orgs[root].name}[/bold] [dim](staff {s}, customers {c:,})[/dim]")
        add(t, root, 1)
        out.print(t)
