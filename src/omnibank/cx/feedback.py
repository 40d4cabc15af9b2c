"""The feedback report (X4): the top topics among negative comments, per branch (or channel) and month.

What it reads: the free text of ``survey.response`` events (``comment``) and of ``complaint.filed`` events
(``description``) in the event log, each analysed by :mod:`omnibank.cx.text` (sentiment and topics). Events
without text are left out.

Grouping (the CX contract): ``branch`` is the event's ``branch_id`` field when it has one (where the
experience happened), else the customer's home branch (``customers.branch_id``); ``channel`` is the event's
channel. A customer unknown to the store, or an event without a channel, falls in :data:`UNKNOWN`. The period
is the bank-local month of the event (``settings.tz``; the log's ``local_date``).

Per group and month: comments, negative ones (sentiment below :data:`omnibank.cx.text.NEGATIVE_BELOW`), the
share negative, and the three topics most often mentioned by the negative ones (ties in the topics file's
order). The text is read into memory for the analysis only: never logged, kept or written.

Flushes nothing and commits nothing: it only reads (the store for home branches, the log through DuckDB).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.cx.text import Topics, analyse, load_topics
from omnibank.errors import InputRefused
from omnibank.events.log import EventLog, sql_string

#: event types with text, and the field holding it
TEXT_FIELDS = {"survey.response": "comment", "complaint.filed": "description"}
GROUPINGS = ("branch", "channel")
#: the group of events whose branch or channel is not known
UNKNOWN = "(unknown)"
TOP = 3
PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_CHUNK = 500
_THOUSANDTH = Decimal("0.001")


@dataclass(frozen=True)
class TopicCount:
    topic: str  # the topic's id
    label: str  # its label (Chinese)
    count: int  # negative comments mentioning it


@dataclass(frozen=True)
class TopicRow:
    group: str  # a branch id or a channel
    period: str  # YYYY-MM, bank-local
    comments: int
    negative: int
    share_negative: Decimal  # negative / comments, 3 decimals
    top_topics: tuple[TopicCount, ...]  # at most 3, most mentioned first


def _month(period: str) -> tuple[date, date]:
    match = PERIOD_RE.fullmatch(period.strip())
    if match is None:
        raise InputRefused(f"--period: {period!r} is not a month; write YYYY-MM, e.g. 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    first = date(year, month, 1)
    return first, date(year + month // 12, month % 12 + 1, 1)


def _texts(
    settings: Settings, period: str | None
) -> list[tuple[str, str | None, str | None, str | None, str]]:
    """``(month, customer_id, channel, branch_id, text)`` of the events with text, in log order."""
    log = EventLog(settings)
    text = " ".join(
        f"WHEN {sql_string(kind)} THEN json_extract_string(payload, {sql_string('$.' + field)})"
        for kind, field in TEXT_FIELDS.items()
    )
    types = ", ".join(sql_string(kind) for kind in TEXT_FIELDS)
    where, params = "", []
    if period is not None:
        first, after = _month(period)
        where, params = " AND local_date >= ? AND local_date < ?", [first, after]
    sql = (
        "SELECT month, customer_id, channel, branch_id, body FROM ("
        "SELECT strftime(local_date, '%Y-%m') AS month, customer_id, channel, "
        "json_extract_string(payload, '$.branch_id') AS branch_id, "
        f"CASE type {text} END AS body, ts, event_id FROM {log.scan_sql()} WHERE type IN ({types}){where}"
        ") WHERE body IS NOT NULL AND trim(body) <> '' ORDER BY ts, event_id"
    )
    con = log.connect()
    try:
        rows: list[tuple[str, str | None, str | None, str | None, str]] = con.execute(sql, params).fetchall()
    finally:
        con.close()
    return rows


def home_branches(session: Session, customer_ids: Iterable[str]) -> dict[str, str]:
    """Customer id → home branch, for those of ``customer_ids`` in the store."""
    ids = sorted(set(customer_ids))
    found: dict[str, str] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        stmt = select(Customer.customer_id, Customer.branch_id).where(Customer.customer_id.in_(chunk))
        found.update({cid: branch for cid, branch in session.execute(stmt)})
    return found


def negative_topics(
    session: Session,
    settings: Settings,
    *,
    period: str | None = None,
    by: str = "branch",
    topics: Topics | None = None,
) -> list[TopicRow]:
    """The report (see the module): one row per group and month with text, ordered by month, then group
    (unknown last); ``period`` (``YYYY-MM``) keeps that month only."""
    if by not in GROUPINGS:
        raise InputRefused(f"--by: {by!r} is not one of {', '.join(GROUPINGS)}")
    topics = topics or load_topics()
    rows = _texts(settings, period)
    if by == "branch":
        homes = home_branches(session, (cid for _, cid, _, branch, _ in rows if not branch and cid))
        groups = [branch or homes.get(cid or "", UNKNOWN) for _, cid, _, branch, _ in rows]
    else:
        groups = [channel or UNKNOWN for _, _, channel, _, _ in rows]
    analysed = analyse([r[4] for r in rows], topics=topics)
    comments: Counter[tuple[str, str]] = Counter()
    negative: Counter[tuple[str, str]] = Counter()
    mentioned: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for row, group, feedback in zip(rows, groups, analysed, strict=True):
        key = (row[0], group)
        comments[key] += 1
        if feedback.label == "negative":
            negative[key] += 1
            mentioned[key].update(feedback.topics)
    order = {tid: i for i, tid in enumerate(topics.ids)}
    out = []
    for month, group in sorted(comments, key=lambda k: (k[0], k[1] == UNKNOWN, k[1])):
        key = (month, group)
        ranked = sorted(mentioned[key].items(), key=lambda kv: (-kv[1], order[kv[0]]))[:TOP]
        share = (Decimal(negative[key]) / Decimal(comments[key])).quantize(
            _THOUSANDTH, rounding=ROUND_HALF_UP
        )
        out.append(
            TopicRow(
                group=group,
                period=month,
                comments=comments[key],
                negative=negative[key],
                share_negative=share,
                top_topics=tuple(TopicCount(t, topics.labels[t], n) for t, n in ranked),
            )
        )
    return out


def rows_for_output(rows: Iterable[TopicRow], *, by: str = "branch") -> list[dict[str, Any]]:
    """Plain rows for :func:`omnibank.listing.print_rows`: the group under ``by``'s name, the month, counts,
    the share negative (a Decimal) and the top topics as ``topic_N`` (label) and ``topic_N_n`` (count)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {
            by: row.group,
            "period": row.period,
            "comments": row.comments,
            "negative": row.negative,
            "share_negative": row.share_negative,
        }
        for i in range(TOP):
            top = row.top_topics[i] if i < len(row.top_topics) else None
            item[f"topic_{i + 1}"] = top.label if top else None
            item[f"topic_{i + 1}_n"] = top.count if top else None
        out.append(item)
    return out


__all__ = [
    "GROUPINGS",
    "UNKNOWN",
    "TopicCount",
    "TopicRow",
    "home_branches",
    "negative_topics",
    "rows_for_output",
]
