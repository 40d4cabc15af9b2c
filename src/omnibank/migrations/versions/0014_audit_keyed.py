"""the audit trail bound with a key the data files do not hold; coupon issues over the API audited

Each audit entry gets ``mac``, the application's HMAC-SHA-256 of its content with the audit key (derived
from the key ring, never stored in the database), unique. The chain's hash (``v2``) covers it, and the new
table ``audit_seals`` holds the platform's keyed seals of the chain's head, written in the transaction that
chains. Both get append-only triggers (the entries' now keep ``mac`` unchanged too).

Entries made before this revision carry no MAC. Those not chained yet are chained here, with the hash they
had always been given (``v1``), so every old entry is chained as before; the platform's first seal, written at
its first chaining after the upgrade (an audited write, a running server's sweep or ``omnibank audit
checkpoint``), then covers them as they stand: from that moment they cannot be changed unnoticed. (Nothing
can show that the unkeyed chain was not rewritten before that moment.) Taking them over needs the key, which
a migration does not use: a migration run with another key ring would otherwise sign with the wrong key.

PostgreSQL: ``omnibank_chain_audit`` hashes ``v2``; the API's coupon issue (``omnibank_grant_fast``) writes
its audit entry (with the MAC the application computed), and the claim and redemption
(``omnibank_coupon_move``) take the MAC of their entry from the application. Both take the RM whose scope
(管户: their own customers and their unit's unassigned ones) the caller has, beside the orgs.

Downgrading drops the seals and the MACs; entries chained since this revision then no longer verify.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

import omnibank.db.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
_OLD_CONTENT = ("id", "at", "actor", "action", "subject_type", "subject_id", "detail", "source", "reason")
_CONTENT = (*_OLD_CONTENT, "mac")
_UNCHAINED = "OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL"
_CHAINED = "NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL"


def _sqlite_entry_triggers(content: tuple[str, ...]) -> tuple[str, str]:
    return (
        "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
        f"WHEN NOT ({_UNCHAINED} AND {_CHAINED} AND {' AND '.join(f'NEW.{c} IS OLD.{c}' for c in content)}) "
        "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
        "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
        "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    )


_SQLITE_SEAL_TRIGGERS = (
    "CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals "
    "BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END",
    "CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals "
    "BEGIN SELECT RAISE(ABORT, 'audit_seals is append-only'); END",
)


def _pg_entry_function(content: tuple[str, ...]) -> str:
    return (
        "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN "
        f"IF TG_OP = 'UPDATE' AND {_UNCHAINED} AND {_CHAINED} "
        f"AND ({', '.join('NEW.' + c for c in content)}) IS NOT DISTINCT FROM "
        f"({', '.join('OLD.' + c for c in content)}) THEN RETURN NEW; END IF; "
        "RAISE EXCEPTION 'audit_entries is append-only'; END $$"
    )


_PG_SEALS = (
    "CREATE OR REPLACE FUNCTION audit_seals_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_seals is append-only'; END $$",
    "CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals "
    "FOR EACH ROW EXECUTE FUNCTION audit_seals_append_only()",
)

_DECLINE = "RAISE EXCEPTION USING ERRCODE = 'OB001', MESSAGE = "

# whether the caller sees the customer: the whole bank (no orgs); an org's subtree (the branches in p_orgs);
# an RM (p_rm, 管户) their own customers wherever held and the unassigned ones of their unit (p_orgs): the
# rule of ``omnibank.customers.repository.scoped``
_VISIBLE = (
    "(p_orgs IS NULL OR (p_rm IS NULL AND branch_id = ANY (p_orgs)) "
    "OR (p_rm IS NOT NULL AND (rm_id = p_rm OR (rm_id IS NULL AND branch_id = ANY (p_orgs)))))"
)

# 0013's grant, with the issue's audit entry (its detail and MAC computed by the application)
_GRANT = f"""
CREATE FUNCTION omnibank_grant_fast(
    p_coupon_id bigint, p_key text, p_campaign text, p_rule text, p_customer text, p_benefit text,
    p_face_value bigint, p_discount_rate numeric, p_claim_days integer, p_valid_days integer,
    p_at timestamptz, p_claim_by timestamptz, p_valid_to timestamptz, p_actor text, p_detail text,
    p_budgets text[], p_orgs text[],
    p_idem_actor text, p_idem_key text, p_idem_hash text, p_idem_cutoff timestamptz, p_response text,
    p_source text, p_audit_detail text, p_mac text, p_rm text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b record;
    budget_id text;
BEGIN
    PERFORM 1 FROM customers WHERE customer_id = p_customer AND {_VISIBLE};
    IF NOT FOUND THEN {_DECLINE} 'customer_not_visible'; END IF;
    SELECT bn.type, bn.status, bn.stock_tracked, bn.face_value_fen, bn.discount_rate, bn.claim_days,
           bn.valid_days, s.status AS supplier_status
        INTO b FROM benefits bn LEFT JOIN suppliers s ON s.id = bn.supplier_id WHERE bn.id = p_benefit;
    IF NOT FOUND OR b.status <> 'active' OR b.type = 'points' OR b.supplier_status = 'suspended'
       OR b.face_value_fen <> p_face_value OR b.discount_rate IS DISTINCT FROM p_discount_rate
       OR b.claim_days IS DISTINCT FROM p_claim_days OR b.valid_days IS DISTINCT FROM p_valid_days THEN
        {_DECLINE} 'benefit_changed';
    END IF;
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k
            (actor, key, request_hash, response_status, response_body, created_at)
            VALUES (p_idem_actor, p_idem_key, p_idem_hash, 201, p_response, p_at)
            ON CONFLICT (actor, key) DO UPDATE SET request_hash = excluded.request_hash,
                response_status = excluded.response_status, response_body = excluded.response_body,
                created_at = excluded.created_at
            WHERE k.created_at < p_idem_cutoff;
        IF NOT FOUND THEN {_DECLINE} 'idempotency_key_used'; END IF;
    END IF;
    INSERT INTO coupons (id, grant_key, campaign, rule, customer_id, benefit_id, branch_id, face_value_fen,
                         discount_rate, stage, status, granted_at, claim_by, valid_from, valid_to, status_at)
        VALUES (p_coupon_id, p_key, p_campaign, p_rule, p_customer, p_benefit, NULL, p_face_value,
                p_discount_rate, NULL, 'granted', p_at, p_claim_by, p_at, p_valid_to, p_at)
        ON CONFLICT (grant_key) DO NOTHING;
    IF NOT FOUND THEN {_DECLINE} 'duplicate_grant_key'; END IF;
    INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
        VALUES (p_coupon_id, 'grant', NULL, 'granted', p_at, p_actor, p_detail);
    INSERT INTO audit_entries (at, actor, action, subject_type, subject_id, detail, source, reason, mac)
        VALUES (p_at, p_actor, 'coupon.grant', 'coupon', p_coupon_id::text, p_audit_detail, p_source, '', p_mac);
    -- the hot rows last, in the general path's order (stock, then budgets by id)
    IF b.stock_tracked THEN
        UPDATE benefit_stock SET available = available - 1, granted = granted + 1
            WHERE benefit_id = p_benefit AND available >= 1;
        IF NOT FOUND THEN {_DECLINE} 'out_of_stock'; END IF;
    END IF;
    FOR budget_id IN SELECT id FROM budgets WHERE id = ANY (p_budgets) ORDER BY id LOOP
        UPDATE budgets SET count_left = count_left - 1, money_left_fen = money_left_fen - p_face_value,
                           count_used = count_used + 1, money_used_fen = money_used_fen + p_face_value
            WHERE id = budget_id AND (count_left IS NULL OR count_left >= 1)
              AND (money_left_fen IS NULL OR money_left_fen >= p_face_value);
        IF NOT FOUND THEN {_DECLINE} 'budget_exhausted'; END IF;
    END LOOP;
END $$
"""

# 0013's claim and redemption, the audit entry carrying the application's MAC (of everything but the
# detail, which is read from the coupon here)
_MOVE = f"""
CREATE FUNCTION omnibank_coupon_move(
    p_id bigint, p_action text, p_now timestamptz, p_actor text, p_orgs text[], p_supplier text,
    p_source text, p_idem_actor text, p_idem_key text, p_idem_hash text, p_idem_cutoff timestamptz,
    p_mac text, p_rm text
) RETURNS SETOF coupons LANGUAGE plpgsql AS $$
DECLARE
    c coupons%ROWTYPE;
BEGIN
    IF p_idem_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k
            (actor, key, request_hash, response_status, response_body, created_at)
            VALUES (p_idem_actor, p_idem_key, p_idem_hash, 0, '', p_now)
            ON CONFLICT (actor, key) DO UPDATE SET request_hash = excluded.request_hash,
                response_status = 0, response_body = '', created_at = excluded.created_at
            WHERE k.created_at < p_idem_cutoff;
        IF NOT FOUND THEN {_DECLINE} 'idempotency_key_used'; END IF;
    END IF;
    IF p_action = 'claim' THEN
        UPDATE coupons SET status = CASE WHEN valid_from <= p_now THEN 'active' ELSE 'claimed' END,
                           status_at = p_now
            WHERE id = p_id AND status = 'granted' AND (claim_by IS NULL OR claim_by >= p_now)
            RETURNING * INTO c;
    ELSIF p_action = 'redeem' THEN
        UPDATE coupons SET status = 'redeemed', status_at = p_now
            WHERE id = p_id AND status = 'active' AND valid_from <= p_now
              AND (valid_to IS NULL OR valid_to >= p_now)
            RETURNING * INTO c;
    ELSE
        {_DECLINE} 'unknown_action';
    END IF;
    IF c.id IS NULL THEN {_DECLINE} 'not_moved'; END IF;
    -- whether the caller may act on it: checked after the move, which is undone with the statement if not
    IF p_supplier IS NOT NULL THEN
        PERFORM 1 FROM benefits WHERE id = c.benefit_id AND supplier_id = p_supplier;
    ELSE
        PERFORM 1 FROM customers WHERE customer_id = c.customer_id AND {_VISIBLE};
    END IF;
    IF NOT FOUND THEN {_DECLINE} 'coupon_not_visible'; END IF;
    IF p_action = 'claim' THEN
        INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
            VALUES (c.id, 'claim', 'granted', 'claimed', p_now, p_actor, '{{}}');
        IF c.status = 'active' THEN
            INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
                VALUES (c.id, 'activate', 'claimed', 'active', p_now, p_actor, '{{}}');
        END IF;
    ELSE
        INSERT INTO coupon_events (coupon_id, action, from_status, to_status, at, actor, detail)
            VALUES (c.id, 'redeem', 'active', 'redeemed', p_now, p_actor, '{{}}');
    END IF;
    INSERT INTO audit_entries (at, actor, action, subject_type, subject_id, detail, source, reason, mac)
        VALUES (p_now, p_actor, 'coupon.' || p_action, 'coupon', c.id::text,
                format('{{"benefit": %s, "customer_id": %s, "status": %s}}',
                       to_json(c.benefit_id), to_json(c.customer_id), to_json(c.status)),
                p_source, '', p_mac);
    RETURN NEXT c;
END $$
"""

# The payload of ``omnibank.audit.service.entry_hash`` (v2: the MAC before prev_hash; see 0013 for how
# to_json matches json.dumps)
_PAYLOAD = (
    "'[\"v2\",' || e.id || ',' || to_json(to_char(e.at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text || ',' || to_json(e.actor)::text || ',' || "
    "to_json(e.action)::text || ',' || to_json(e.subject_type)::text || ',' || "
    "coalesce(to_json(e.subject_id)::text, 'null') || ',' || to_json(e.detail)::text || ',' || "
    "to_json(e.source)::text || ',' || to_json(e.reason)::text || ',' || "
    "coalesce(to_json(e.mac)::text, 'null') || ',' || to_json(prev)::text || ']'"
)

_CHAIN = f"""
CREATE OR REPLACE FUNCTION omnibank_chain_audit(p_limit integer, p_wait boolean) RETURNS integer
LANGUAGE plpgsql
-- the unchained entries in id order by a plain index scan (see migration 0013)
SET enable_bitmapscan = off
AS $$
DECLARE
    head bigint;
    prev text;
    digest text;
    e record;
    n integer := 0;
BEGIN
    IF p_wait THEN
        PERFORM pg_advisory_xact_lock(7312006);
    ELSIF NOT pg_try_advisory_xact_lock(7312006) THEN
        RETURN 0;
    END IF;
    SELECT seq, hash INTO head, prev FROM audit_entries WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1;
    IF NOT FOUND THEN
        head := 0;
        prev := repeat('0', 64);
    END IF;
    FOR e IN SELECT id, at, actor, action, subject_type, subject_id, detail, source, reason, mac
             FROM audit_entries WHERE seq IS NULL ORDER BY id LIMIT p_limit LOOP
        head := head + 1;
        digest := encode(sha256(convert_to({_PAYLOAD}, 'UTF8')), 'hex');
        UPDATE audit_entries SET seq = head, prev_hash = prev, hash = digest WHERE id = e.id AND seq IS NULL;
        prev := digest;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$
"""

_GRANT_0013_ARGS = (
    "bigint, text, text, text, text, text, bigint, numeric, integer, integer, timestamptz, timestamptz, "
    "timestamptz, text, text, text[], text[], text, text, text, timestamptz, text"
)
_MOVE_0013_ARGS = "bigint, text, timestamptz, text, text[], text, text, text, text, text, timestamptz"


def _v1_hash(row: sa.Row[tuple[object, ...]], prev_hash: str) -> str:
    """Frozen copy of omnibank.audit.service.entry_hash(legacy=True)."""
    at: datetime = row.at
    payload = ["v1", int(row.id), at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), row.actor,
               row.action, row.subject_type, row.subject_id, row.detail, row.source, row.reason, prev_hash]  # fmt: skip
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _chain_pending_entries() -> None:
    """Entries appended before this revision and not chained yet are chained as they always were (v1)."""
    bind = op.get_bind()
    entries = sa.table(
        "audit_entries",
        *(
            sa.column(c)
            for c in (
                "id",
                "actor",
                "action",
                "subject_type",
                "subject_id",
                "detail",
                "source",
                "reason",
                "seq",
                "prev_hash",
                "hash",
            )
        ),  # fmt: skip
        sa.column("at", omnibank.db.types.UTCDateTime()),
    )
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("SELECT pg_advisory_xact_lock(7312006)"))
    head = bind.execute(
        sa.select(entries.c.seq, entries.c.hash).where(entries.c.seq.is_not(None))
        .order_by(entries.c.seq.desc()).limit(1)
    ).first()  # fmt: skip
    seq, prev = (int(head[0]), str(head[1])) if head else (0, GENESIS)
    for row in bind.execute(sa.select(entries).where(entries.c.seq.is_(None)).order_by(entries.c.id)).all():
        seq += 1
        digest = _v1_hash(row, prev)
        bind.execute(
            sa.update(entries).where(entries.c.id == row.id).values(seq=seq, prev_hash=prev, hash=digest)
        )
        prev = digest


def _revision_0013() -> ModuleType:
    path = Path(__file__).with_name("0013_coupon_fast_path.py")
    spec = importlib.util.spec_from_file_location("omnibank_migration_0013", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    _chain_pending_entries()
    if not postgresql:  # the table is rebuilt below: its triggers go with it, and are made again after
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_delete")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=112), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_entries_mac"), ["mac"])
    op.create_table(
        "audit_seals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("at", omnibank.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("prev", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_seals_seq")),
        sa.UniqueConstraint("prev", name=op.f("uq_audit_seals_prev")),
        sa.UniqueConstraint("mac", name=op.f("uq_audit_seals_mac")),
    )
    if postgresql:
        op.execute(_pg_entry_function(_CONTENT))
        for ddl in _PG_SEALS:
            op.execute(ddl)
        op.execute(_CHAIN)
        op.execute(f"DROP FUNCTION omnibank_grant_fast({_GRANT_0013_ARGS})")
        op.execute(f"DROP FUNCTION omnibank_coupon_move({_MOVE_0013_ARGS})")
        op.execute(_GRANT)
        op.execute(_MOVE)
    else:
        for ddl in (*_sqlite_entry_triggers(_CONTENT), *_SQLITE_SEAL_TRIGGERS):
            op.execute(ddl)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        old = _revision_0013()
        op.execute(f"DROP FUNCTION omnibank_grant_fast({_GRANT_0013_ARGS}, text, text, text, text)")
        op.execute(f"DROP FUNCTION omnibank_coupon_move({_MOVE_0013_ARGS}, text, text)")
        op.execute(old._GRANT)
        op.execute(old._MOVE)
        op.execute(old._CHAIN)
        op.execute("DROP TRIGGER IF EXISTS audit_seals_append_only ON audit_seals")
        op.execute("DROP FUNCTION IF EXISTS audit_seals_append_only()")
        op.execute(_pg_entry_function(_OLD_CONTENT))
    else:
        for name in ("audit_seals_no_update", "audit_seals_no_delete", "audit_entries_no_update",
                     "audit_entries_no_delete"):  # fmt: skip
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("audit_seals")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_entries_mac"), type_="unique")
        batch_op.drop_column("mac")
    if not postgresql:
        for ddl in _sqlite_entry_triggers(_OLD_CONTENT):
            op.execute(ddl)
