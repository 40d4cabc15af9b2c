"""The segments pages: the live count (scoped, with the parser's error), the masked and audited preview,
saving (segments:write), a segment's snapshots and diff, the lifecycle × wealth heat map, Chinese, CSRF."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.audit.models import AuditEntry
from omnibank.db import unit_of_work
from omnibank.kit.masking import mask_name
from omnibank.tags import service as tags
from tests.console.conftest import Console

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tags"
NAMES = ("张三丰", "李四光", "王五岳", "赵六合", "钱七星")


def _count(console: Console, expr: str) -> str:
    r = console.post("/console/segments/count", {"expr": expr}, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    return str(r.text)


def _number(html: str) -> int:
    found = re.search(r"(\d+) customers? match", html)
    assert found, html
    return int(found.group(1))


@pytest.mark.parametrize(("who", "sees"), [("rm_a", 2), ("rm_b", 1), ("bm_a", 3), ("cm", 5)])
def test_live_count_is_scoped_to_the_callers_customers(console: Console, who: str, sees: int) -> None:
    console.signin(who)
    assert _number(_count(console, "age >= 0")) == sees


def test_live_count_shows_the_parsers_error_with_its_position(console: Console) -> None:
    console.signin("cm")
    html = _count(console, "age >= 0 AND AND")
    assert 'class="error"' in html and "position" in html
    unknown = _count(console, "salary > 1")
    assert "unknown field" in unknown and "salary" in unknown
    assert "Type an expression" in _count(console, "   ")


def test_preview_masks_names_and_is_audited(console: Console) -> None:
    console.signin("rm_a")
    r = console.post("/console/segments/preview", {"expr": "age >= 0"}, headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert "CA1" in r.text and "CA2" in r.text and "CA3" not in r.text and "CB1" not in r.text
    assert not any(name in r.text for name in NAMES)
    assert mask_name("张三丰") in r.text and mask_name("李四光") in r.text
    with unit_of_work(console.bank.settings) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "segment.preview")).one()
        assert entry.actor == "user:rm_a" and entry.source.startswith("console:")
        assert set(json.loads(entry.detail)["shown"]) == {"CA1", "CA2"}


def test_save_needs_segments_write(console: Console) -> None:
    console.signin("rm_a")
    page = console.get("/console/segments")
    assert page.status_code == 200 and 'name="name"' not in page.text  # no save form without the permission
    r = console.post("/console/segments", {"name": "seniors", "expr": "age >= 60"})
    assert r.status_code == 403
    with unit_of_work(console.bank.settings) as session:
        assert session.scalar(select(AuditEntry).where(AuditEntry.action == "segment.save")) is None


def test_a_campaign_manager_saves_a_segment_snapshots_it_and_sees_it_listed(console: Console) -> None:
    console.signin("cm")
    r = console.post("/console/segments", {"name": "seniors", "expr": "age >= 60", "description": "长者客群"})
    assert r.status_code == 303 and r.headers["location"] == "/console/segments/seniors"
    listed = console.get("/console/segments")
    assert "/console/segments/seniors" in listed.text and "长者客群" in listed.text
    page = console.get("/console/segments/seniors")
    assert page.status_code == 200 and "age &gt;= 60" in page.text and "No snapshot yet" in page.text
    assert console.post("/console/segments/seniors/snapshot").status_code == 303
    page = console.get("/console/segments/seniors")
    assert "first snapshot" in page.text and 'data-chart="segment-history-data"' in page.text
    assert ">CA1</a>" in page.text  # born 1960: 66 at the bank's today
    with unit_of_work(console.bank.settings) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "segment.snapshot")).one()
        assert entry.source.startswith("console:")


def test_a_bad_expression_is_not_saved_and_the_form_keeps_it(console: Console) -> None:
    console.signin("cm")
    r = console.post("/console/segments", {"name": "broken", "expr": "age >>= 1"})
    assert r.status_code == 422 and 'class="error"' in r.text and "age &gt;&gt;= 1" in r.text
    assert console.get("/console/segments/broken").status_code == 404


def test_the_rm_sees_only_their_customers_in_a_segments_figures(console: Console) -> None:
    console.signin("cm")
    console.post("/console/segments", {"name": "everyone", "expr": "age >= 0"})
    console.post("/console/segments/everyone/snapshot")
    assert re.search(r">\s*5\s*</td>", console.get("/console/segments").text)
    console.signin("rm_a")
    listed = console.get("/console/segments").text
    assert re.search(r">\s*2\s*</td>", listed) and not re.search(r">\s*5\s*</td>", listed)
    page = console.get("/console/segments/everyone").text
    assert ">CA1</a>" in page and ">CA2</a>" in page and "CA3" not in page and "CB1" not in page
    assert console.post("/console/segments/everyone/snapshot").status_code == 403


def _load_tags(console: Console) -> None:
    with unit_of_work(console.bank.settings) as session:
        tags.store_definitions(session, tags.read_definitions(EXAMPLES))
    with unit_of_work(console.bank.settings) as session:
        tags.compute_tags(session, console.bank.settings, as_of=date(2026, 3, 1))


def test_matrix_page_draws_a_heat_map_and_the_same_figures_as_a_table(console: Console) -> None:
    _load_tags(console)
    console.signin("cm")
    r = console.get("/console/segments/matrix")
    assert r.status_code == 200, r.text
    assert 'data-chart="segment-matrix-data"' in r.text and '"type": "heatmap"' in r.text
    assert '"visualMap"' in r.text and "<table" in r.text
    assert re.search(r"<tfoot>.*>5</strong></td>\s*</tr></tfoot>", r.text, re.S)  # the grand total
    scoped = console.get("/console/segments/matrix")
    assert scoped.status_code == 200
    console.signin("rm_a")
    mine = console.get("/console/segments/matrix").text
    assert re.search(r"<tfoot>.*>2</strong></td>\s*</tr></tfoot>", mine, re.S)
    console.signin("cm")
    none = console.get("/console/segments/matrix", params={"occupation": "farmer"}).text
    assert re.search(r"<tfoot>.*>0</strong></td>\s*</tr></tfoot>", none, re.S)
    seniors = console.get("/console/segments/matrix", params={"where": "age >= 60"}).text
    assert re.search(r"<tfoot>.*>1</strong></td>\s*</tr></tfoot>", seniors, re.S)
    bad = console.get("/console/segments/matrix", params={"occupation": "pirate"})
    assert bad.status_code == 422 and "pirate" in bad.text


def test_matrix_without_tags_says_what_to_load(console: Console) -> None:
    console.signin("cm")
    r = console.get("/console/segments/matrix")
    assert r.status_code == 422 and "tags load" in r.text


def test_the_page_in_chinese(console: Console) -> None:
    console.signin("cm", lang="zh")
    r = console.get("/console/segments")
    assert 'lang="zh-CN"' in r.text and "<h1>客群</h1>" in r.text and "保存为客群" in r.text


def test_post_without_csrf_is_refused(console: Console) -> None:
    console.signin("cm")
    for path, data in (("/console/segments/count", {"expr": "age >= 0"}),
                       ("/console/segments", {"name": "x", "expr": "age >= 0"})):  # fmt: skip
        r = console.client.post(path, data=data, follow_redirects=False)
        assert r.status_code == 403, path


def test_people_without_segments_read_are_refused(console: Console) -> None:
    console.signin("agent")
    assert console.get("/console/segments").status_code == 403
    assert console.get("/console/segments/matrix").status_code == 403
