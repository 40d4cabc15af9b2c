"""Invite codes (M1): one live code per active member of staff; short, unambiguous, unguessable, never
reused. Flushes only; the caller commits.

A code is 7 characters from 31 (digits 2–9 and capitals without I, L and O, so nobody reads 0 for O or
1 for I or L over the phone): 31⁷ ≈ 2.75 × 10¹⁰ codes, drawn with :mod:`secrets`, so 2,000 live codes
leave a guesser one chance in ~14 million a try — and ``/s/`` and the API are rate limited. A code is
the table's key and revoked codes are kept, so a drawn code that ever existed is drawn again.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from omnibank.audit import service as audit
from omnibank.errors import InputRefused, NotFound
from omnibank.invites.models import InviteCode
from omnibank.orgs import repository as orgs_repo
from omnibank.orgs.models import Org, Staff

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LENGTH = 7
CODE_PATTERN = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")
#: the revoke reason of a code replaced by ``invites rotate`` and of a code whose holder left
ROTATED = "rotated"
LEFT = "left the bank"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalise(text: str) -> str:
    """A code as typed: spaces and dashes dropped, upper case (``ab3 k7x9`` → ``AB3K7X9``)."""
    return re.sub(r"[\s-]", "", text).upper()


def _fresh_codes(session: Session, n: int) -> list[str]:
    """``n`` codes no code ever issued has had (and distinct among themselves)."""
    made: set[str] = set()
    while len(made) < n:
        wanted = {new_code() for _ in range(n - len(made))} - made
        taken = set(session.scalars(select(InviteCode.code).where(InviteCode.code.in_(sorted(wanted)))))
        made |= wanted - taken
    return sorted(made)


@dataclass(frozen=True)
class IssueReport:
    issued: int  # staff who got a code now
    kept: int  # staff who had a live code already
    org_id: str | None


def _staff_in(session: Session, org_id: str | None) -> list[Staff]:
    stmt = select(Staff).where(Staff.left_at.is_(None)).order_by(Staff.staff_id)
    if org_id is not None:
        if session.get(Org, org_id) is None:
            raise NotFound(f"no org {org_id} (see omnibank org tree)")
        stmt = stmt.where(Staff.org_id.in_(sorted(orgs_repo.subtree_ids(session, org_id))))
    return list(session.scalars(stmt))


def live_codes(session: Session, staff_ids: list[str] | None = None) -> dict[str, InviteCode]:
    """The live code of each member of staff who has one (of ``staff_ids``, or everyone)."""
    stmt = select(InviteCode).where(InviteCode.revoked_at.is_(None))
    if staff_ids is not None:
        stmt = stmt.where(InviteCode.staff_id.in_(staff_ids))
    return {c.staff_id: c for c in session.scalars(stmt)}


def live_code(session: Session, staff_id: str) -> InviteCode | None:
    return live_codes(session, [staff_id]).get(staff_id)


def issue(session: Session, *, org_id: str | None = None, now: datetime, actor: str) -> IssueReport:
    """Give every active member of staff in the subtree (or the bank) who has no live code one. Staff who
    have a code keep it: running it again issues nothing."""
    staff = _staff_in(session, org_id)
    have = live_codes(session)
    missing = [s.staff_id for s in staff if s.staff_id not in have]
    codes = _fresh_codes(session, len(missing))
    for staff_id, code in zip(missing, secrets.SystemRandom().sample(codes, len(codes)), strict=True):
        session.add(InviteCode(code=code, staff_id=staff_id, issued_at=now, issued_by=actor))
    session.flush()
    if missing:
        audit.record(session, actor=actor, action="invites.issue", subject_type="org", subject_id=org_id,
                     detail={"issued": len(missing)}, at=now)  # fmt: skip
    return IssueReport(issued=len(missing), kept=len(staff) - len(missing), org_id=org_id)


def _staff(session: Session, staff_id: str) -> Staff:
    staff = session.get(Staff, staff_id)
    if staff is None:
        raise NotFound(f"no staff member {staff_id} (load staff.csv first)")
    return staff


def revoke(session: Session, staff_id: str, *, reason: str, now: datetime, actor: str) -> InviteCode:
    """Revoke the staff member's live code: it binds no new customer; customers bound through it stay."""
    _staff(session, staff_id)
    reason = reason.strip()
    if not reason:
        raise InputRefused("--reason: say why the code is revoked")
    if len(reason) > 200:
        raise InputRefused("--reason: at most 200 characters")
    code = live_code(session, staff_id)
    if code is None:
        raise NotFound(f"{staff_id} has no live invite code (omnibank invites issue)")
    code.revoked_at, code.revoked_by, code.revoke_reason = now, actor, reason
    session.flush()
    audit.record(session, actor=actor, action="invites.revoke", subject_type="staff", subject_id=staff_id,
                 detail={"code": code.code}, reason=reason, at=now)  # fmt: skip
    return code


def rotate(
    session: Session, staff_id: str, *, now: datetime, actor: str
) -> tuple[InviteCode | None, InviteCode]:
    """A new code for the member of staff; the old one (if any) stops binding new customers."""
    staff = _staff(session, staff_id)
    if staff.left_at is not None:
        raise InputRefused(f"{staff_id} has left the bank: no new code")
    old = live_code(session, staff_id)
    if old is not None:
        old.revoked_at, old.revoked_by, old.revoke_reason = now, actor, ROTATED
        session.flush()
    new = InviteCode(code=_fresh_codes(session, 1)[0], staff_id=staff_id, issued_at=now, issued_by=actor)
    session.add(new)
    session.flush()
    audit.record(session, actor=actor, action="invites.rotate", subject_type="staff", subject_id=staff_id,
                 detail={"old": old.code if old else None, "new": new.code}, at=now)  # fmt: skip
    return old, new


def revoke_leavers(session: Session, staff_ids: list[str], *, now: datetime, actor: str) -> int:
    """Revoke the live codes of staff who left; the number revoked."""
    if not staff_ids:
        return 0
    result = session.execute(
        update(InviteCode)
        .where(InviteCode.staff_id.in_(staff_ids), InviteCode.revoked_at.is_(None))
        .values(revoked_at=now, revoked_by=actor, revoke_reason=LEFT)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
