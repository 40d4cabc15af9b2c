"""Loading the organisation tree and staff (data contract: orgs.csv, staff.csv)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from omnibank.db import versions
from omnibank.db.upsert import upsert_changed
from omnibank.kit import validate as v
from omnibank.kit.crypto import FieldCipher
from omnibank.kit.loading import CsvRecord, LoadReport, LoadRun, csv_source
from omnibank.kit.masking import mask_free_text, mask_name, mask_phone
from omnibank.orgs import repository
from omnibank.orgs.models import ORG_LEVELS, STAFF_ROLES, Org, Staff

ORG_COLUMNS = ["org_id", "parent_id", "name", "level"]
STAFF_COLUMNS = ["staff_id", "org_id", "name", "role", "phone"]
_RANK = {level: i for i, level in enumerate(ORG_LEVELS)}
_BATCH = 2000


@dataclass
class _OrgRow:
    line: int
    org_id: str
    parent_id: str | None
    name: str
    level: str
    raw: str


def _parse_org(rec: CsvRecord) -> _OrgRow:
    assert rec.values is not None
    row = rec.values
    org_id = v.code("org_id", row["org_id"])
    level = v.choice("level", row["level"], ORG_LEVELS)
    name = v.text("name", row["name"], max_len=200)
    parent = row["parent_id"] or None
    if level == "hq" and parent:
        raise v.FieldError("parent_id", "the hq row must have an empty parent_id")
    if level != "hq" and not parent:
        raise v.FieldError("parent_id", f"missing (only the hq row has no parent; this row is {level})")
    if parent is not None:
        v.code("parent_id", parent)
        if parent == org_id:
            raise v.FieldError("parent_id", "an org cannot be its own parent")
    return _OrgRow(rec.line, org_id, parent, name, level, rec.raw)


def load_orgs(
    session: Session, path: Path, *, run: LoadRun, progress: bool = True, encoding: str = "utf-8"
) -> LoadReport:
    """Upsert the org tree. Rows with an unknown parent, a level not below their parent's, a second hq,
    or on a cycle are rejected (with every row beneath them); the rest of the tree loads."""
    rows: dict[str, _OrgRow] = {}
    with csv_source(
        path, required=ORG_COLUMNS, description="orgs", progress=progress, encoding=encoding
    ) as records:
        for rec in records:
            if rec.error or rec.values is None:
                run.reject(rec.line, rec.error or "unreadable", mask_free_text(rec.raw))
                continue
            try:
                parsed = _parse_org(rec)
            except v.FieldError as exc:
                run.reject(rec.line, str(exc), rec.raw)
                continue
            if parsed.org_id in rows:
                earlier = rows[parsed.org_id].line
                run.reject(
                    rec.line, f"org_id: {parsed.org_id} appears again (first on line {earlier})", rec.raw
                )
                continue
            rows[parsed.org_id] = parsed

    existing = repository.all_orgs(session)
    # The tree as it will stand: the database, overridden by the file.
    parent_of: dict[str, str | None] = {o.org_id: o.parent_id for o in existing.values()}
    level_of: dict[str, str] = {o.org_id: o.level for o in existing.values()}
    for r in rows.values():
        parent_of[r.org_id] = r.parent_id
        level_of[r.org_id] = r.level

    rejected: dict[str, str] = {}
    hqs = sorted((r for r in rows.values() if r.level == "hq"), key=lambda r: r.line)
    known_hq = [o.org_id for o in existing.values() if o.level == "hq" and o.org_id not in rows]
    for r in hqs[(0 if known_hq else 1) :]:
        rejected[r.org_id] = f"level: a second hq (the tree already has {(known_hq or [hqs[0].org_id])[0]})"

    for r in sorted(rows.values(), key=lambda r: r.line):
        if r.org_id in rejected:
            continue
        # walk up to the root: unknown parent, cycle, or a rejected ancestor makes the row bad
        seen = [r.org_id]
        node = r.org_id
        reason = None
        while True:
            parent = parent_of.get(node)
            if parent is None:
                break
            if parent not in parent_of:
                reason = (
                    f"parent_id: unknown org {parent}"
                    if node == r.org_id
                    else f"parent_id: ancestor {node} has an unknown parent {parent}"
                )
                break
            if parent in seen:
                cycle = seen[seen.index(parent) :] + [parent]
                reason = "cycle in the org tree: " + " → ".join(reversed(cycle))
                break
            seen.append(parent)
            node = parent
        if reason is None and r.parent_id is not None and _RANK[level_of[r.parent_id]] >= _RANK[r.level]:
            reason = f"level: {r.level} cannot sit under {r.parent_id} ({level_of[r.parent_id]})"
        if reason:
            rejected[r.org_id] = reason

    # A row beneath a rejected row cannot stand either (whatever order the file lists them in).
    for r in rows.values():
        node = r.org_id
        while r.org_id not in rejected and (parent := parent_of.get(node)) is not None:
            if parent in rejected:
                rejected[r.org_id] = f"parent_id: ancestor {parent} was rejected ({rejected[parent]})"
            node = parent

    for org_id, reason in sorted(rejected.items(), key=lambda item: rows[item[0]].line):
        r = rows[org_id]
        run.reject(r.line, reason, r.raw)

    now = datetime.now(UTC)
    good = [r for r in rows.values() if r.org_id not in rejected]
    # Parents first, so that foreign keys hold row by row.
    depth_cache: dict[str, int] = {}

    def depth(org_id: str) -> int:
        if org_id not in depth_cache:
            parent = parent_of.get(org_id)
            depth_cache[org_id] = 0 if parent is None else depth(parent) + 1
        return depth_cache[org_id]

    good.sort(key=lambda r: (depth(r.org_id), r.line))
    changed = 0
    for r in good:
        org = existing.get(r.org_id)
        if org is None:
            session.add(
                Org(
                    org_id=r.org_id,
                    parent_id=r.parent_id,
                    name=r.name,
                    level=r.level,
                    path="",
                    depth=0,
                    updated_at=now,
                )
            )
            changed += 1
        elif (org.parent_id, org.name, org.level) != (r.parent_id, r.name, r.level):
            org.parent_id, org.name, org.level, org.updated_at = r.parent_id, r.name, r.level, now
            changed += 1
        session.flush()
    if changed:
        _recompute_paths(session)
    run.report.loaded = changed
    if changed:
        versions.bump(session, "orgs")
    run.report.duplicates = len(good) - changed
    return run.report


def _recompute_paths(session: Session) -> None:
    orgs = repository.all_orgs(session)
    paths: dict[str, tuple[str, int]] = {}

    def path_of(org_id: str) -> tuple[str, int]:
        if org_id not in paths:
            parent = orgs[org_id].parent_id
            if parent is None:
                paths[org_id] = (f"/{org_id}/", 0)
            else:
                ppath, pdepth = path_of(parent)
                paths[org_id] = (f"{ppath}{org_id}/", pdepth + 1)
        return paths[org_id]

    for org in orgs.values():
        p, d = path_of(org.org_id)
        if (org.path, org.depth) != (p, d):
            session.execute(update(Org).where(Org.org_id == org.org_id).values(path=p, depth=d))
    session.flush()


def _masked_staff_line(values: dict[str, str]) -> str:
    masked = dict(values, name=mask_name(values["name"]), phone=mask_phone(values["phone"]))
    return ",".join(masked[c] for c in STAFF_COLUMNS)


def load_staff(
    session: Session,
    path: Path,
    *,
    run: LoadRun,
    cipher: FieldCipher,
    progress: bool = True,
    encoding: str = "utf-8",
) -> LoadReport:
    known_orgs = repository.org_ids(session)
    table: Table = Staff.__table__  # type: ignore[assignment]
    batch: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    present: set[str] = set()  # every staff id the file names, good row or not: they have not left
    changed = 0
    good = 0
    now = datetime.now(UTC)
    with csv_source(
        path, required=STAFF_COLUMNS, description="staff", progress=progress, encoding=encoding,
        personal={"name": mask_name, "phone": mask_phone},
    ) as records:  # fmt: skip
        for rec in records:
            if rec.error or rec.values is None:
                run.reject(rec.line, rec.error or "unreadable", mask_free_text(rec.raw))
                continue
            row = rec.values
            present.add(row["staff_id"].strip())
            try:
                staff_id = v.code("staff_id", row["staff_id"])
                org_id = v.code("org_id", row["org_id"])
                if org_id not in known_orgs:
                    raise v.FieldError("org_id", f"unknown org {org_id} (load orgs.csv first)")
                role = v.choice("role", row["role"], STAFF_ROLES)
                name = v.text("name", row["name"], max_len=64)
                phone = v.mobile("phone", row["phone"]) if row["phone"] else None
                if staff_id in seen:
                    raise v.FieldError(
                        "staff_id", f"{staff_id} appears again (first on line {seen[staff_id]})"
                    )
            except v.FieldError as exc:
                run.reject(rec.line, str(exc), _masked_staff_line(row))
                continue
            seen[staff_id] = rec.line
            good += 1
            batch.append(
                {
                    "staff_id": staff_id,
                    "org_id": org_id,
                    "role": role,
                    "name_enc": cipher.encrypt(name, context=f"staff.name:{staff_id}"),
                    "phone_enc": cipher.encrypt(phone, context=f"staff.phone:{staff_id}") if phone else None,
                    "phone_bidx": cipher.blind_index("phone", phone) if phone else None,
                    "fingerprint": cipher.fingerprint(staff_id, org_id, role, name, phone or ""),
                    "updated_at": now,
                    "left_at": None,  # kept on update: who left and who came back is settled below
                }
            )
            if len(batch) >= _BATCH:
                changed += upsert_changed(session, table, batch, key="staff_id", keep_on_update=("left_at",))
                batch.clear()
    changed += upsert_changed(session, table, batch, key="staff_id", keep_on_update=("left_at",))
    run.report.loaded = changed
    run.report.duplicates = good - changed
    if good:  # a file of the whole staff: whoever it leaves out has left (a file with no good row: nobody)
        left = mark_left(session, sorted(repository.staff_ids(session) - present), now=now)
        gone = session.scalars(select(Staff.staff_id).where(Staff.left_at.is_not(None)))
        back = sorted(set(gone) & present)  # named again: back at the bank
        for i in range(0, len(back), _BATCH):
            stmt = update(Staff).where(Staff.staff_id.in_(back[i : i + _BATCH]))
            session.execute(stmt.values(left_at=None))
        if left:
            run.report.extra["left"] = left
    return run.report


def mark_left(session: Session, staff_ids: list[str], *, now: datetime) -> list[str]:
    """Mark those of ``staff_ids`` still active as having left; the ids marked now."""
    wanted = set(staff_ids)
    active = sorted(set(session.scalars(select(Staff.staff_id).where(Staff.left_at.is_(None)))) & wanted)
    for i in range(0, len(active), _BATCH):
        session.execute(update(Staff).where(Staff.staff_id.in_(active[i : i + _BATCH])).values(left_at=now))
    return active
