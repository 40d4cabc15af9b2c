"""The `omnibank segment` and `omnibank tags` commands as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from tests.conftest import ON_POSTGRES
from tests.segments.bank import load_bank

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tags"


def audit_actions(env) -> list[tuple[str, dict]]:
    with unit_of_work(env.settings) as session:
        return [
            (a.action, json.loads(a.detail))
            for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]


def test_count_prints_the_number_last(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    r = cli("segment", "count", "in_org('B001') AND aum >= 50000", "--as-of", "2026-03-01")
    assert r.exit_code == 0, r.stderr
    assert r.last_line == "2"


def test_errors_are_messages_with_exit_1(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank", with_events=False)
    r = cli("segment", "count", "favourite_colour = 'red'")
    assert r.exit_code == 1
    assert "unknown field `favourite_colour`" in r.stderr and "Traceback" not in r.stderr
    r = cli("segment", "count", "age > 1", "--as-of", "2026-02-30")
    assert r.exit_code == 1 and "--as-of" in r.stderr
    if not ON_POSTGRES:
        r = cli("segment", "count", "age > 1", "--engine", "postgres")
        assert r.exit_code == 1 and "needs PostgreSQL" in r.stderr


def test_preview_is_masked_and_audited(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    r = cli("segment", "preview", "in_org('S0101')", "--as-of", "2026-03-01", "-n", "1")
    assert r.exit_code == 0, r.stderr
    assert "张*" in r.stdout and "张三丰" not in r.stdout
    assert "1 of 2 matching" in r.stdout
    action, detail = audit_actions(env)[-1]
    assert action == "segment.preview" and detail["shown"] == ["C01"]


def test_export_writes_ids_to_csv_or_parquet(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    csv_file, pq_file = tmp_path / "out" / "ids.csv", tmp_path / "out" / "ids.parquet"
    assert cli("segment", "export", "rm_id IS NULL", "--out", str(csv_file)).exit_code == 0
    assert csv_file.read_text(encoding="utf-8").splitlines() == ["customer_id", "C03", "C05"]
    assert cli("segment", "export", "rm_id IS NULL", "--out", str(pq_file)).exit_code == 0
    assert pq.read_table(pq_file).column("customer_id").to_pylist() == ["C03", "C05"]
    bad = cli("segment", "export", "rm_id IS NULL", "--out", str(tmp_path / "ids.xlsx"))
    assert bad.exit_code == 1 and ".csv or .parquet" in bad.stderr
    assert audit_actions(env)[-1][0] == "segment.export"


def test_save_list_and_snapshots_record_who_entered_and_left(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    assert cli("segment", "save", "recent_login", "events('app.login', 30) > 0", "-d", "活跃").exit_code == 0
    first = cli("segment", "snapshot", "recent_login", "--as-of", "2026-03-01")
    assert first.exit_code == 0, first.stderr
    assert "2 members" in first.stdout and "first snapshot: 2 entered" in first.stdout
    second = cli("segment", "snapshot", "recent_login", "--as-of", "2026-03-04")
    assert "1 entered" not in second.stdout
    assert "0 entered, 1 left" in second.stdout and "left: C02" in second.stdout
    listing = cli("segment", "list")
    assert re.search(r"recent_login .* 1 .* 2026-03-04", listing.stdout)
    bad = cli("segment", "snapshot", "nope")
    assert bad.exit_code == 1 and "saved: recent_login" in bad.stderr
    bad = cli("segment", "save", "Bad Name", "age > 1")
    assert bad.exit_code == 1


def test_tags_then_matrix(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    assert cli("segment", "matrix").exit_code == 1  # no tags yet: says what to do
    r = cli("tags", "load", str(EXAMPLES))
    assert r.exit_code == 0, r.stderr
    r = cli("tags", "compute", "--as-of", "2026-03-01")
    assert r.exit_code == 0, r.stderr
    assert re.search(r"wealth_private\s*│\s*1\s", r.stdout)
    m = cli("segment", "matrix", "--as-of", "2026-03-01")
    assert m.exit_code == 0, m.stderr
    assert m.last_line.startswith("5 customers in")
    tagged = cli("segment", "count", "has_tag('wealth_private') OR silver_75_plus", "--as-of", "2026-03-01")
    assert tagged.last_line == "1"  # C03: private banking, born 1951


def test_customer_360_shows_tags_and_saved_segments(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    cli("tags", "load", str(EXAMPLES))
    cli("tags", "compute", "--as-of", "2026-03-01")
    cli("segment", "save", "private_banking", "has_tag('wealth_private')")
    cli("segment", "snapshot", "private_banking", "--as-of", "2026-03-01")
    r = cli("customer", "show", "C03")
    assert r.exit_code == 0, r.stderr
    assert "wealth_private (wealth, since 2026-03-01)" in r.stdout
    assert "saved segments: private_banking" in r.stdout
    other = cli("customer", "show", "C04")
    assert "saved segments: none" in other.stdout and "wealth_private" not in other.stdout


def test_after_a_merge_the_survivor_counts_the_merged_events(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    expr = "events('app.login', 1) = 1 AND amount('card.transaction', 60) = 0.3"
    before = cli("segment", "export", expr, "--as-of", "2026-03-01", "--out", str(tmp_path / "a.csv"))
    assert before.exit_code == 0
    assert (tmp_path / "a.csv").read_text().split() == ["customer_id", "C01"]
    merged = cli("customer", "merge", "C01", "C03", "--reason", "同一客户")
    assert merged.exit_code == 0, merged.stderr
    cli("segment", "export", expr, "--as-of", "2026-03-01", "--out", str(tmp_path / "b.csv"))
    assert (tmp_path / "b.csv").read_text().split() == ["customer_id", "C03"]
    assert cli("segment", "count", "in_org('HQ')").last_line == "4"  # C01 is no longer counted itself


def test_count_in_postgres_after_mirroring_the_log(cli, env, tmp_path) -> None:
    if not ON_POSTGRES:
        r = cli("segment", "count", "age > 1", "--engine", "postgres")
        assert r.exit_code == 1 and "needs PostgreSQL" in r.stderr
        return
    load_bank(env.settings, tmp_path / "bank")
    assert cli("events", "mirror").exit_code == 0
    for expr in ("events('app.login', 30) > 0", "amount('card.transaction', 60) = 0.3 OR rm_id IS NULL"):
        duck = cli("segment", "count", expr, "--as-of", "2026-03-01")
        pg = cli("segment", "count", expr, "--as-of", "2026-03-01", "--engine", "postgres")
        assert pg.exit_code == 0, pg.stderr
        assert pg.last_line == duck.last_line


def test_export_attributes_writes_the_snapshot_without_personal_fields(cli, env, tmp_path) -> None:
    load_bank(env.settings, tmp_path / "bank")
    out = tmp_path / "attributes"
    r = cli("export", "attributes", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "wrote 5 customers' attributes" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "merges.parquet", "profiles.parquet", "scores.parquet", "tags.parquet",
    ]  # fmt: skip
    profiles = pq.read_table(out / "profiles.parquet")
    assert profiles.num_rows == 5
    assert not {"name", "phone", "id_number", "name_enc", "phone_enc"} & set(profiles.column_names)
    written = (out / "profiles.parquet").read_bytes()
    assert b"13800000001" not in written  # the bank's phone numbers never reach the export
    r = cli("export", "attributes", "--out", str(out))  # not over an export already there
    assert r.exit_code == 1 and "is not an empty folder" in r.stderr
    assert not (tmp_path / "attributes.tmp").exists()


def test_the_spark_engine_is_refused_clearly_without_pyspark(cli, env, tmp_path, monkeypatch) -> None:
    import sys

    load_bank(env.settings, tmp_path / "bank", with_events=False)
    monkeypatch.setitem(sys.modules, "pyspark", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    from omnibank.segments import spark

    spark._session.cache_clear()
    r = cli("segment", "count", "age > 1", "--engine", "spark")
    assert r.exit_code == 1
    assert "pip install 'omnibank[spark]'" in r.stderr and "Traceback" not in r.stderr
    r = cli("segment", "count", "age > 1", "--engine", "trino")
    assert r.exit_code == 1 and "--engine must be duckdb, postgres or spark" in r.stderr
