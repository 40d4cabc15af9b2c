"""PostgreSQL: the API's coupon issue, claim and redeem in one statement each (the fast path), and the
audit trail chained by the database

Three functions, PostgreSQL only (SQLite has no stored code; there the API always takes the general path,
and entries are chained by ``omnibank.audit.service`` in Python):

- ``omnibank_grant_fast`` issues one coupon: the customer within the caller's scope, the benefit as the
  caller priced it (active, not points, same face value and windows), the Idempotency-Key's stored answer,
  the coupon and its first history row, then one item of stock and of every budget defined for the
  campaign and its rule (in id order, as the general path takes them).
- ``omnibank_coupon_move`` claims or redeems one coupon the caller may act on, with its history rows and
  its audit entry (and, with a key, the key's reservation; the caller stores the answer in the same
  transaction).

- ``omnibank_chain_audit`` links committed unchained audit entries to the end of the hash chain, as
  ``omnibank.audit.service.chain`` does in Python (the same canonical payload and SHA-256, checked against
  it by a property test): the API server's background chainer no longer reads every entry into Python and
  writes it back, which cost it a sixth of its CPU under load.

The coupons lose their index on ``status`` and, on PostgreSQL, fill their pages to 80%: a claim or a
redemption changes only ``status`` and ``status_at``, so it becomes an update PostgreSQL writes beside the
old row version without touching any of the table's indexes.

The first two functions do the whole thing or nothing: anything out of the ordinary (a duplicate grant key, stock or a
budget used up, a suspended supplier, a coupon in another state, one the caller may not see, a key used
before) raises SQLSTATE ``OB001`` with a word for it, the statement rolls back, and the API takes the
general path (``omnibank.benefits.granting`` / ``ledger``), which gives the refusal, the replay or the
duplicate exactly as it always did. Called as the only statement of its transaction, a grant holds the
stock and budget rows (the hot rows every issue updates) only while the function runs, not across round
trips to the API server.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 08:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_DECLINE = "RAISE EXCEPTION USING ERRCODE = 'OB001', MESSAGE = "

_GRANT = f"""
CREATE OR REPLACE FUNCTION omnibank_grant_fast(
    p_coupon_id bigint, p_key text, p_campaign text, p_rule text, p_customer text, p_benefit text,
    p_face_value bigint, p_discount_rate numeric, p_claim_days integer, p_valid_days integer,
    p_at timestamptz, p_claim_by timestamptz, p_valid_to timestamptz, p_actor text, p_detail text,
    p_budgets text[], p_orgs text[],
    p_idem_actor text, p_idem_key text, p_idem_hash text, p_idem_cutoff timestamptz, p_response text
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    b record;
    budget_id text;
BEGIN
    PERFORM 1 FROM customers
        WHERE customer_id = p_customer AND (p_orgs IS NULL OR branch_id = ANY (p_orgs));
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

_MOVE = f"""
CREATE OR REPLACE FUNCTION omnibank_coupon_move(
    p_id bigint, p_action text, p_now timestamptz, p_actor text, p_orgs text[], p_supplier text,
    p_source text, p_idem_actor text, p_idem_key text, p_idem_hash text, p_idem_cutoff timestamptz
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
        PERFORM 1 FROM customers
            WHERE customer_id = c.customer_id AND (p_orgs IS NULL OR branch_id = ANY (p_orgs));
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
    INSERT INTO audit_entries (at, actor, action, subject_type, subject_id, detail, source, reason)
        VALUES (p_now, p_actor, 'coupon.' || p_action, 'coupon', c.id::text,
                format('{{"benefit": %s, "customer_id": %s, "status": %s}}',
                       to_json(c.benefit_id), to_json(c.customer_id), to_json(c.status)),
                p_source, '');
    RETURN NEXT c;
END $$
"""


# The payload of ``omnibank.audit.service.entry_hash``: a compact JSON array (json.dumps with
# ensure_ascii=False escapes exactly what to_json escapes: quote, backslash and control characters, the
# latter as \b \f \n \r \t or \u00xx), times as canonical_at writes them.
_PAYLOAD = (
    "'[\"v1\",' || e.id || ',' || to_json(to_char(e.at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text || ',' || to_json(e.actor)::text || ',' || "
    "to_json(e.action)::text || ',' || to_json(e.subject_type)::text || ',' || "
    "coalesce(to_json(e.subject_id)::text, 'null') || ',' || to_json(e.detail)::text || ',' || "
    "to_json(e.source)::text || ',' || to_json(e.reason)::text || ',' || to_json(prev)::text || ']'"
)

_CHAIN = f"""
CREATE OR REPLACE FUNCTION omnibank_chain_audit(p_limit integer, p_wait boolean) RETURNS integer
LANGUAGE plpgsql
-- the unchained entries in id order by a plain index scan: it marks the index entries of entries chained
-- since the last vacuum as dead and skips them after; a bitmap scan would visit every one of them again in
-- every round, so rounds grew slower the longer a busy server ran
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
    FOR e IN SELECT id, at, actor, action, subject_type, subject_id, detail, source, reason
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


def upgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        batch.drop_index("ix_coupons_status")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE coupons SET (fillfactor = 80)")
    op.execute(_GRANT)
    op.execute(_MOVE)
    op.execute(_CHAIN)


def downgrade() -> None:
    with op.batch_alter_table("coupons") as batch:
        batch.create_index("ix_coupons_status", ["status"], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE coupons RESET (fillfactor)")
    op.execute("DROP FUNCTION IF EXISTS omnibank_chain_audit(integer, boolean)")
    op.execute("DROP FUNCTION IF EXISTS omnibank_coupon_move(bigint, text, timestamptz, text, text[], text, "
               "text, text, text, text, timestamptz)")  # fmt: skip
    op.execute("DROP FUNCTION IF EXISTS omnibank_grant_fast(bigint, text, text, text, text, text, bigint, "
               "numeric, integer, integer, timestamptz, timestamptz, timestamptz, text, text, text[], text[], "
               "text, text, text, timestamptz, text)")  # fmt: skip
