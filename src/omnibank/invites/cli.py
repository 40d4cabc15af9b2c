"""`omnibank invites …`: staff invite codes (邀请码) — issue, revoke, rotate, list, export; the binding pass;
what the codes brought in at every level of the org tree; leaderboards; refusals; rewards. And `omnibank
share …` (``share_app``): a staff member's share link, a poster with its QR code, and the links' figures."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from sqlalchemy import select

from omnibank.audit.service import cli_actor
from omnibank.config import get_settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused, NotFound
from omnibank.invites import binding, codes, poster, share, stats, views
from omnibank.invites import rewards as service
from omnibank.invites.codes import live_code
from omnibank.invites.models import REFUSAL_REASONS
from omnibank.kit.clock import local_today, system_clock
from omnibank.kit.console import out
from omnibank.kit.dates import parse_date, parse_moment
from omnibank.kit.money import format_cny
from omnibank.listing import Col, FormatOpt, OutputFormat, note, print_rows
from omnibank.security import get_cipher

app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS

LEVEL_NAMES = ("staff", "team", "subbranch", "branch")
_ORG = typer.Option(None, "--org", help="Only this org's subtree, e.g. B001.")


@app.command("issue")
def issue(org: str | None = _ORG) -> None:
    """Give every active member of staff (in the subtree) who has no code one; those with a code keep it."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        r = codes.issue(session, org_id=org, now=system_clock(), actor=cli_actor())
    out.print(f"issued {r.issued:,} codes; {r.kept:,} staff kept theirs")


@app.command("revoke")
def revoke(
    staff: str = typer.Argument(..., help="The staff id, e.g. E00012."),
    reason: str = typer.Option(..., "--reason", help="Why (kept with the code and in the audit trail)."),
) -> None:
    """Revoke a member of staff's code: it binds no new customer; customers bound through it stay bound."""
    with unit_of_work() as session:
        code = codes.revoke(session, staff, reason=reason, now=system_clock(), actor=cli_actor())
    out.print(f"revoked {code.code} of {escape(staff)}")


@app.command("rotate")
def rotate(staff: str = typer.Argument(..., help="The staff id, e.g. E00012.")) -> None:
    """A new code for a member of staff; the old one stops binding new customers (those bound stay)."""
    with unit_of_work() as session:
        old, new = codes.rotate(session, staff, now=system_clock(), actor=cli_actor())
    before = f" (was {old.code}, now revoked)" if old else ""
    out.print(f"{escape(staff)}: new code {new.code}{before}")


@app.command("list")
def list_codes(org: str | None = _ORG, fmt: OutputFormat = FormatOpt) -> None:
    """Staff and their live codes."""
    with unit_of_work() as session:
        rows = views.codes(session, stats.Reach.whole_bank(), org_id=org)
    columns = (Col("staff_id"), Col("org_id"), Col("role"), Col("code", empty="—"), Col("issued_at"),
               Col("revoked"), Col("left_at", empty=""))  # fmt: skip
    print_rows(columns, [vars(r) for r in rows], fmt, empty="no staff (load staff.csv first)")


@app.command("export")
def export(
    out_path: Path = typer.Option(..., "--out", help="The CSV to write: staff_id,org_id,code,link."),
    org: str | None = _ORG,
    channel: str = typer.Option("sms", "--channel", help="The channel the links are sent through."),
) -> None:
    """Write each active member of staff's code and personal link, to send them by SMS or e-mail."""
    from omnibank.invites import share

    settings = get_settings()
    now = system_clock()
    with unit_of_work(settings) as session:
        rows = [
            r for r in views.codes(session, stats.Reach.whole_bank(), org_id=org) if r.code and not r.left_at
        ]
        links = []
        for r in rows:
            link = share.make_link(session, staff_id=r.staff_id, kind="home", target_id="home",
                                   channel=channel, now=now, actor=cli_actor())  # fmt: skip
            links.append(share.link_url(settings, link.token))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["staff_id", "org_id", "code", "link"])
        for r, url in zip(rows, links, strict=True):
            writer.writerow([r.staff_id, r.org_id, r.code, url])
    out.print(f"wrote {len(rows):,} codes to {escape(str(out_path))}")


@app.command("bind")
def bind() -> None:
    """Bind customers to staff from the coded events loaded since the last pass (the worker does this on
    every loop; run it here to see the figures at once)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        report = binding.bind_pass(session, settings, now=system_clock())
    out.print(report.line())


def _period(since: str | None, until: str | None) -> stats.Period:
    return stats.Period(
        parse_date("--from", since) if since else None, parse_date("--to", until) if until else None
    )


def _as_of(period: stats.Period) -> date:
    today = local_today(get_settings().tz)
    return min(period.until, today) if period.until else today


_COLUMNS = (
    Col("unit"), Col("level"), Col("name"), Col("code", empty=""), Col("invited"), Col("participated"),
    Col("converted"), Col("conversion_rate", "rate", show=lambda v: f"{v:.1%}"),
    Col("amount", show=lambda v: format_cny(int(v * 100))),
)  # fmt: skip


def _row(n: stats.Node) -> dict[str, object]:
    f = n.figures
    return {"unit": n.key, "level": n.level, "name": n.name + (" (直属)" if n.direct else ""), "code": n.code,
            "invited": f.invited, "participated": f.participated, "converted": f.converted,
            "conversion_rate": f.conversion_rate, "amount": f.amount}  # fmt: skip


def _level(by: str) -> stats.Level:
    if by not in LEVEL_NAMES:
        raise AppError(f"--by: {by!r}; use one of {', '.join(LEVEL_NAMES)}")
    return by  # type: ignore[return-value]


@app.command("stats")
def stats_cmd(
    org: str | None = _ORG,
    campaign: str | None = typer.Option(
        None, "--campaign", help="Only this campaign's participants convert."
    ),
    since: str | None = typer.Option(None, "--from", help="Customers bound from this day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--to", help="… to this day, inclusive."),
    by: str = typer.Option("branch", "--by", help="staff, team, subbranch or branch."),
    convert: str = typer.Option(
        stats.DEFAULT_CONVERT, "--convert", help="Conversion, in the expression language."
    ),
    days: int = typer.Option(
        stats.DEFAULT_DAYS, "--days", help="Converted amount: card spend within N days."
    ),
    out_path: Path | None = typer.Option(None, "--out", help="Also write the rows to this CSV."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """What the codes brought in, per unit: invited, participated, converted, conversion rate, converted
    amount. The rows of any level add up to the total."""
    settings = get_settings()
    level = _level(by)
    period = _period(since, until)
    with unit_of_work(settings) as session:
        reach = stats.narrowed(session, stats.Reach.whole_bank(), org)
        rep = stats.report(session, settings, reach=reach, period=period, as_of=_as_of(period),
                           campaign=campaign, convert=convert, days=days)  # fmt: skip
    rows = [_row(n) for n in rep.rows(level)]
    title = f"invite codes by {by} · {rep.period.describe()}" + (
        f" · campaign {campaign}" if campaign else ""
    )
    print_rows(_COLUMNS, rows, fmt, title=title, empty="no customer bound through a code in this period")
    t = rep.total
    note(fmt, f"total: invited {t.invited:,}, participated {t.participated:,}, converted {t.converted:,} "
              f"({t.conversion_rate:.1%}), amount {format_cny(t.amount_fen)} "
              f"within {days} days of binding")  # fmt: skip
    if out_path is not None:
        _write_rows(out_path, _COLUMNS, rows)
        note(fmt, f"wrote {len(rows):,} rows to {escape(str(out_path))}")


@app.command("leaderboard")
def leaderboard(
    by: str = typer.Option("branch", "--by", help="branch or staff (also team, subbranch)."),
    top: int = typer.Option(10, "--top", min=1, max=1000, help="How many to show."),
    metric: str = typer.Option("invited", "--metric", help="invited, participated, converted or amount."),
    org: str | None = _ORG,
    since: str | None = typer.Option(None, "--from", help="Customers bound from this day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--to", help="… to this day, inclusive."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Rank branches (or staff) by what their codes brought in."""
    settings = get_settings()
    level = _level(by)
    period = _period(since, until)
    with unit_of_work(settings) as session:
        reach = stats.narrowed(session, stats.Reach.whole_bank(), org)
        rep = stats.report(session, settings, reach=reach, period=period, as_of=_as_of(period))
        ranked = stats.leaderboard(rep, by=level, metric=metric, top=top)
    rows = [{"rank": rank, **_row(n)} for rank, n in ranked]
    print_rows((Col("rank"), *_COLUMNS), rows, fmt, title=f"top {top} by {metric} · {rep.period.describe()}",
               empty="no customer bound through a code in this period")  # fmt: skip


@app.command("refusals")
def refusals(
    reason: str | None = typer.Option(
        None, "--reason", help="Only this reason: " + ", ".join(REFUSAL_REASONS)
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Coded events that did not bind, latest first, with the reason; counts by reason."""
    if reason is not None and reason not in REFUSAL_REASONS:
        raise AppError(f"--reason: {reason!r}; use one of {', '.join(REFUSAL_REASONS)}")
    with unit_of_work() as session:
        reach = stats.Reach.whole_bank()
        rows = views.refusals(
            session, reach, actor=cli_actor(), reason=reason, limit=limit, now=system_clock()
        )
        counts = stats.refusal_counts(session, reach)
    columns = (Col("at"), Col("event_id"), Col("customer_id"), Col("code"), Col("staff_id", empty="—"),
               Col("reason"), Col("channel", empty=""))  # fmt: skip
    print_rows(columns, [vars(r) for r in rows], fmt, empty="no refused binding")
    note(fmt, "by reason: " + (", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"))


@app.command("customers")
def customers(
    staff: str = typer.Option(..., "--staff", help="The staff id whose bound customers to show."),
    limit: int = typer.Option(50, "--limit", min=1, max=10_000),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """The customers a member of staff's codes bound, latest first (names and phones masked; audited)."""
    settings = get_settings()
    with unit_of_work(settings) as session:
        rows = views.bound_customers(session, get_cipher(settings), stats.Reach.whole_bank(),
                                     actor=cli_actor(), staff_id=staff, limit=limit,
                                     now=system_clock())  # fmt: skip
    columns = (Col("customer_id"), Col("name"), Col("phone"), Col("code"), Col("channel", empty=""),
               Col("bound_at"))  # fmt: skip
    print_rows(columns, [vars(r) for r in rows], fmt, empty=f"no customer bound through {staff}'s codes")


# -- rewards ----------------------------------------------------------------------------------------

_COMPUTED = (
    Col("staff_id", "staff"),
    Col("rule"),
    Col("name"),
    Col("events"),
    Col("basis"),
    Col("reward"),
    Col("capped"),
    Col("why"),
)
_POSTED = (Col("posted"),)
_LEDGER = (
    Col("staff_id", "staff"),
    Col("rule"),
    Col("period"),
    Col("reward"),
    Col("why"),
    Col("entry_id", "entry"),
    Col("posted_at", "posted at"),
)
_ACTIONS = {"new": "posted", "unchanged": "unchanged", "corrected": "corrected", "withdrawn": "reversed"}


def _write_rows(path: Path, columns: Sequence[Col], rows: Sequence[dict[str, Any]]) -> None:
    """The rows as a CSV file (the keys as the header; money as exact decimals, datetimes ISO 8601)."""
    keys = [c.key for c in columns if c.data]
    tz = get_settings().tz
    try:
        with path.open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(keys)
            for row in rows:
                cells = []
                for k in keys:
                    v = row[k]
                    if isinstance(v, bool):
                        v = "true" if v else "false"
                    elif hasattr(v, "astimezone"):
                        v = v.astimezone(tz).isoformat()
                    cells.append("" if v is None else str(v))
                writer.writerow(cells)
    except OSError as exc:
        raise InputRefused(f"--out {path}: cannot write it ({exc.strerror})") from None


def rewards(
    period: str | None = typer.Option(
        None, "--period", help="A bank-local month, YYYY-MM (default: last month)."
    ),
    rules: Path | None = typer.Option(
        None,
        "--rules",
        help="The reward rules (YAML, e.g. examples/invites/rewards.yaml): compute the month's figures. "
        "Without it: what the staff reward ledger holds for the month.",
    ),
    post: bool = typer.Option(
        False, "--post", help="Post the figures to the staff reward ledger (a changed figure by reversal)."
    ),
    org: str | None = typer.Option(
        None,
        "--org",
        help="Only customers bound through staff of this org then (with --rules); staff now in it (without).",
    ),
    out_file: Path | None = typer.Option(None, "--out", help="Also write the rows to this CSV file."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """What each member of staff earned through their invite code in a month, and why."""
    settings = get_settings()
    now = system_clock()
    month = service.parse_period(period or service.last_month(now, settings.tz), settings.tz).text
    if post and rules is None:
        raise InputRefused("--post needs --rules: the figures to post are computed from the rules")
    if post and org is not None:
        raise InputRefused(
            "--post takes the whole bank: a figure computed within one org would be partial for staff who "
            "moved, and would reverse their full figure"
        )
    if rules is None:
        _ledger(month, org, out_file, fmt)
        return
    spec = service.load_rules(rules)
    with unit_of_work(settings) as session:
        if post:
            report = service.post(session, settings, spec, month, now=now, actor=cli_actor())
            lines, done = report.lines, {(p.rule, p.staff_id): p for p in report.posted}
        else:
            lines, done = service.compute(session, settings, spec, month, org=org), {}
    rows: list[dict[str, Any]] = []
    for line in lines:
        row: dict[str, Any] = {
            "staff_id": line.staff_id, "rule": line.rule, "name": line.name, "events": line.events,
            "basis": line.basis, "reward": line.reward, "capped": line.capped, "why": line.why,
        }  # fmt: skip
        if post:
            p = done.get((line.rule, line.staff_id))
            row["posted"] = _ACTIONS[p.action] if p is not None else "nothing due"
        rows.append(row)
    columns = _COMPUTED + (_POSTED if post else ())
    scope = f" within {org}" if org else ""
    empty = f"no rewards for {month}{scope}: no events of bound customers in their windows"
    print_rows(columns, rows, fmt, title=f"staff rewards {month}{scope}", empty=empty)
    total = sum((line.reward for line in lines), Decimal("0.00"))
    staff = len({line.staff_id for line in lines})
    note(fmt, f"{staff} members of staff earned {total:,.2f} CNY in {month}{escape(scope)}")
    if post:
        withdrawn = [p for p in report.posted if p.action == "withdrawn"]
        for p in withdrawn:
            note(fmt, f"{p.staff_id}, {p.rule}: {p.previous or 0:,.2f} reversed (nothing due now)")
        note(
            fmt,
            f"posted: {report.count('new')} new, {report.count('corrected')} corrected, "
            f"{len(withdrawn)} reversed, {report.count('unchanged')} unchanged",
        )
    if out_file is not None:
        _write_rows(out_file, columns, rows)
        note(fmt, f"written to {escape(str(out_file))}")


def _ledger(month: str, org: str | None, out_file: Path | None, fmt: OutputFormat) -> None:
    settings = get_settings()
    with unit_of_work(settings) as session:
        staff_ids = None
        if org is not None:
            from omnibank.orgs import repository as orgs_repo
            from omnibank.orgs.models import Org, Staff

            if session.get(Org, org) is None:
                raise NotFound(f"no org {org} (see omnibank org tree)")
            subtree = sorted(orgs_repo.subtree_ids(session, org))
            staff_ids = list(session.scalars(select(Staff.staff_id).where(Staff.org_id.in_(subtree))))
        lines = service.posted(session, month, staff_ids=staff_ids)
    rows = [
        {"staff_id": x.staff_id, "rule": x.rule, "period": x.period, "reward": x.reward, "why": x.why,
         "entry_id": x.entry_id, "posted_at": x.posted_at}
        for x in lines
    ]  # fmt: skip
    scope = f" (staff now in {org})" if org else ""
    print_rows(_LEDGER, rows, fmt, title=f"staff rewards posted for {month}{scope}",
               empty=f"nothing posted for {month}{scope} (post with --rules FILE --post)")  # fmt: skip
    total = sum((x.reward for x in lines), Decimal("0.00"))
    note(fmt, f"{len({x.staff_id for x in lines})} members of staff, {total:,.2f} CNY posted for {month}")
    if out_file is not None:
        _write_rows(out_file, _LEDGER, rows)
        note(fmt, f"written to {escape(str(out_file))}")


def rewards_verify() -> None:
    """Check the staff reward ledger: reversals, live credits, derived balances; exit 1 on a problem."""
    with unit_of_work(get_settings()) as session:
        report = service.verify(session)
    for problem in report.problems:
        out.print(escape(problem))
    if report.problems:
        out.print(f"{len(report.problems)} problems in {report.entries} entries of the staff reward ledger")
        raise typer.Exit(1)
    total = sum(report.balances.values(), Decimal("0.00"))
    out.print(
        f"OK: {report.entries} entries; {len(report.balances)} members of staff, balances "
        f"{total:,.2f} CNY in all, each the sum of its live credits"
    )


app.command("rewards")(rewards)
app.command("rewards-verify")(rewards_verify)


# -- share links and posters (`omnibank share`) ----------------------------------------------------

share_app = typer.Typer(no_args_is_help=True)  # help: omnibank.cli.COMMANDS ("share")

StaffOpt = typer.Option(..., "--staff", help="The staff id whose link it is, e.g. E00001.")
TargetOpt = typer.Option(
    ...,
    "--target",
    help="KIND:ID, KIND one of product|campaign|benefit|scene|home (e.g. benefit:luckin_coffee).",
)
ChannelOpt = typer.Option(share.DEFAULT_CHANNEL, "--channel", help="Where it is shared: wechat, app, sms, …")


def _make_link(staff: str, target: str, channel: str) -> tuple[str, str | None, str, str]:
    """Make (or count again) the link; its URL, the staff member's live code and the poster's texts."""
    settings = get_settings()
    kind, target_id = share.parse_target(target)
    with unit_of_work(settings) as session:
        link = share.make_link(session, staff_id=staff, kind=kind, target_id=target_id, channel=channel,
                               now=system_clock(), actor=cli_actor())  # fmt: skip
        code = live_code(session, staff)
        title, subtitle = share.poster_texts(session, kind, target_id)
        return share.link_url(settings, link.token), code.code if code else None, title, subtitle


@share_app.command("link")
def link_cmd(staff: str = StaffOpt, target: str = TargetOpt, channel: str = ChannelOpt) -> None:
    """Print the staff member's share link to the target (the same link each time; each time counts a
    share)."""
    url, _code, _title, _subtitle = _make_link(staff, target, channel)
    out.print(url, soft_wrap=True, highlight=False)


@share_app.command("poster")
def poster_cmd(
    staff: str = StaffOpt,
    target: str = TargetOpt,
    channel: str = ChannelOpt,
    out_path: Path = typer.Option(..., "--out", help="The PNG file to write, e.g. poster.png."),
    title: str = typer.Option(None, "--title", help="The headline (default: one for the kind of target)."),
    subtitle: str = typer.Option(None, "--subtitle", help="The line under it (default: the target's name)."),
) -> None:
    """Write a PNG poster (750×1334) with the QR code of the staff member's share link and their invite code
    (no name): counts a share."""
    if out_path.suffix.lower() != ".png":
        raise AppError(f"--out: {out_path} should end in .png")
    if not out_path.parent.is_dir():
        raise AppError(f"--out: the folder {out_path.parent} does not exist")
    font = poster.find_font(get_settings().poster_font)  # before the share is counted
    url, code, default_title, default_subtitle = _make_link(staff, target, channel)
    png = poster.render(url, title=title or default_title, subtitle=default_subtitle if subtitle is None
                        else subtitle, code=code, font_path=font)  # fmt: skip
    out_path.write_bytes(png)
    out.print(f"wrote {escape(str(out_path))} ({len(png) // 1024} KB): {escape(url)}", soft_wrap=True)


_SHARE_COLUMNS = {
    "staff": (Col("staff_id", "staff"),),
    "target": (Col("target_kind", "kind"), Col("target_id", "target")),
}
_SHARE_FIGURES = (
    Col("links"), Col("shares"), Col("clicks"), Col("unique_clickers", "unique"), Col("bindings"),
    Col("conversions"), Col("conversion_rate", "rate", show=lambda v: f"{v:.1%}"),
)  # fmt: skip


@share_app.command("stats")
def share_stats_cmd(
    by: str = typer.Option("staff", "--by", help="One row per staff member or per target: staff|target."),
    org: str = typer.Option(None, "--org", help="Only the links of staff in this org's subtree."),
    staff: str = typer.Option(None, "--staff", help="Only this staff member's links."),
    since: str = typer.Option(None, "--from", help="Clicks, bindings and cards from this day (YYYY-MM-DD)."),
    until: str = typer.Option(None, "--to", help="… to this day, included (YYYY-MM-DD)."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Shares, clicks, unique clickers (devices), bindings through the links and conversions (bound customers
    with a card issued after binding); rate = conversions ÷ unique clickers. Shares are all-time counts."""
    if by not in ("staff", "target"):
        raise AppError(f"--by: {by!r} is not staff or target")
    settings = get_settings()
    start = parse_moment("--from", since, settings.tz) if since else None
    end = parse_moment("--to", until, settings.tz, day_means="end") if until else None
    if start is not None and end is not None and end <= start:
        raise AppError("--to: before --from")
    with unit_of_work(settings) as session:
        rows = share.stats(session, settings, by="staff" if by == "staff" else "target", org_id=org,
                           staff_id=staff, since=start, until=end)  # fmt: skip
    columns = (*_SHARE_COLUMNS[by], *_SHARE_FIGURES)
    shown = [{**r.__dict__, "conversion_rate": r.conversion_rate} for r in rows]
    if print_rows(columns, shown, fmt, empty="no share links yet (omnibank share link)", tz=settings.tz):
        total_clickers = sum(r.unique_clickers for r in rows)
        note(fmt, f"{len(rows)} rows; {sum(r.clicks for r in rows):,} clicks, {total_clickers:,} unique "
                  f"clickers, {sum(r.conversions for r in rows):,} conversions")  # fmt: skip
