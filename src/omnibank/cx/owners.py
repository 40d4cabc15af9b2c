"""Who owns an alert: exactly one member of staff, found through the org tree, or the desk's default queue.

* **A customer's alert** goes to the customer's RM (``customers.rm_id``) when that member of staff exists
  and is active; else to the manager of the customer's branch (the branch manager at that org or the
  nearest one above it, as leads and the service desk find them:
  :func:`omnibank.leads.service.branch_managers`). A rule may ask for the branch's manager directly
  (``owner: branch_manager``): then the branch is the one the event happened at (its ``branch_id``) or,
  without one, the customer's home branch.
* **A branch's alert** goes to that branch's manager (nearest up the tree); **a bank-wide one** to the
  manager of the desk's default queue's org.
* A manager who has left does not own anything: the search goes on above their org.
* **Nobody found**: the alert goes to the service desk's default queue (the routing file's catch-all
  queue, ``desk`` without a file) and the reason says so.

:func:`owner_lookup` reads what a batch of events needs in a few queries (customers in chunks, the branch
managers and the org tree once), and :class:`OwnerLookup` answers from memory: the pure evaluation
(:func:`omnibank.cx.alerts.evaluate`) asks it once per alert and never touches the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from omnibank.config import Settings
from omnibank.customers.models import Customer
from omnibank.leads.service import branch_managers
from omnibank.orgs.models import Org, Staff

_CHUNK = 900  # customers per IN (…) query: below SQLite's default limit of bound parameters


@dataclass(frozen=True)
class Owner:
    """The one owner of an alert: a member of staff, or (nobody found) a queue; and why them."""

    staff_id: str | None
    queue: str | None
    reason: str

    @property
    def label(self) -> str:
        return self.staff_id or f"queue:{self.queue}"


@dataclass(frozen=True)
class OwnerLookup:
    """Owners from memory (see the module's docstring). ``rm``: customer → their active RM; ``home``:
    customer → home branch; ``managers``: org → nearest active branch manager at or above it."""

    rm: Mapping[str, str] = field(default_factory=dict)
    home: Mapping[str, str] = field(default_factory=dict)
    managers: Mapping[str, str] = field(default_factory=dict)
    default_queue: str = "desk"
    desk_org: str | None = None  # the org of the default queue (a bank-wide alert's manager is its one)

    def branch_of(self, customer_id: str | None) -> str | None:
        return self.home.get(customer_id) if customer_id else None

    def _queue(self, why: str) -> Owner:
        return Owner(
            None, self.default_queue, f"{why}: the service desk's default queue {self.default_queue}"
        )

    def of_customer(self, customer_id: str, *, prefer: str = "rm", branch_id: str | None = None) -> Owner:
        """The owner of a customer's alert: their RM (``prefer="rm"``), else the manager of their branch;
        with ``prefer="branch_manager"`` the manager of ``branch_id`` (the event's branch) or of the
        customer's home branch."""
        if prefer == "rm":
            rm = self.rm.get(customer_id)
            if rm is not None:
                return Owner(rm, None, "the customer's RM")
            home = self.home.get(customer_id)
            if home is None:
                return self._queue("no active RM and no branch known for the customer")
            manager = self.managers.get(home)
            if manager is None:
                return self._queue(f"no active RM and no branch manager at or above {home}")
            return Owner(manager, None, f"no active RM: the manager of the customer's branch {home}")
        branch = branch_id or self.home.get(customer_id)
        if branch is None:
            return self._queue("no branch known for the event or the customer")
        return self.of_branch(branch)

    def of_branch(self, branch_id: str) -> Owner:
        manager = self.managers.get(branch_id)
        if manager is None:
            return self._queue(f"no branch manager at or above {branch_id}")
        return Owner(manager, None, f"the manager of branch {branch_id}")

    def of_bank(self) -> Owner:
        manager = self.managers.get(self.desk_org) if self.desk_org else None
        if manager is None:
            return self._queue("no manager of the desk's org")
        return Owner(manager, None, f"the manager of the service desk's org {self.desk_org}")


def active_managers(session: Session) -> dict[str, str]:
    """Every org → the nearest *active* branch manager at or above it (a manager who left is passed over:
    the search goes on above their org)."""
    parent: dict[str, str | None] = {
        org: up for org, up in session.execute(select(Org.org_id, Org.parent_id))
    }
    managers = {
        staff_id: (org_id, left_at is None)
        for staff_id, org_id, left_at in session.execute(
            select(Staff.staff_id, Staff.org_id, Staff.left_at).where(Staff.role == "branch_manager")
        )
    }
    nearest = branch_managers(session)  # lowest id at the nearest org having one, whether active or not
    active_at_org: dict[str, str] = {}
    for staff_id, (org_id, active) in sorted(managers.items()):
        if active:
            active_at_org.setdefault(org_id, staff_id)
    active_at: dict[str, str] = {}
    for org, manager in nearest.items():
        found: str | None = manager
        seen: set[str] = set()
        while found is not None and not managers[found][1]:
            at = managers[found][0]
            if at in active_at_org:  # another manager of the same org is still there
                found = active_at_org[at]
                break
            if at in seen:
                found = None
                break
            seen.add(at)
            up = parent.get(at)
            found = nearest.get(up) if up else None
        if found is not None:
            active_at[org] = found
    return active_at


def default_queue(settings: Settings) -> tuple[str, str | None]:
    """The desk's default queue (the routing file's catch-all) and its org."""
    from omnibank.service.routing import DEFAULT_QUEUE, load_routing

    if settings.routing_file is None:
        return DEFAULT_QUEUE, None
    routing = load_routing(settings.routing_file)
    queue = routing.queue(routing.rules[-1].queue)
    return routing.rules[-1].queue, queue.org if queue is not None else None


def owner_lookup(
    session: Session,
    *,
    customers: Iterable[str],
    queue: str = "desk",
    queue_org: str | None = None,
) -> OwnerLookup:
    """The lookup for a batch of events of ``customers``: a query per 900 customers, two for the staff
    and one for the org tree, however many events there are."""
    wanted = sorted({c for c in customers if c})
    home: dict[str, str] = {}
    rm_of: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = session.execute(
            select(Customer.customer_id, Customer.branch_id, Customer.rm_id).where(
                Customer.customer_id.in_(chunk)
            )
        )
        for customer_id, branch_id, rm_id in rows:
            home[customer_id] = branch_id
            if rm_id:
                rm_of[customer_id] = rm_id
    active: set[str] = set()
    rms = sorted(set(rm_of.values()))
    for start in range(0, len(rms), _CHUNK):
        active.update(
            session.scalars(
                select(Staff.staff_id).where(
                    Staff.staff_id.in_(rms[start : start + _CHUNK]), Staff.left_at.is_(None)
                )
            )
        )
    if queue_org is None:
        queue_org = session.scalar(select(Org.org_id).where(Org.parent_id.is_(None)).order_by(Org.org_id))
    return OwnerLookup(
        rm={c: s for c, s in rm_of.items() if s in active},
        home=home,
        managers=active_managers(session),
        default_queue=queue,
        desk_org=queue_org,
    )
