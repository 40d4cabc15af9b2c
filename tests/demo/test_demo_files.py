"""The demo's contract files hold (synthetic) names, phones and ID numbers in plain text: `omnibank demo`
writes them to a private temporary folder outside the data home and removes it when the demo ends, so no
contract file is left under the data home; what it leaves there is its owner's only (0600 / 0700)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

CONTRACT = {"orgs.csv", "staff.csv", "customers.csv", "events.jsonl"}


@pytest.mark.embedded_only  # where the demo writes its files does not depend on the store
def test_the_demo_leaves_no_contract_file_under_the_data_home(cli, env) -> None:
    r = cli("demo", "--customers", "300", "--days", "20")
    assert r.exit_code == 0, r.stderr
    home = env.home
    files = [p for p in home.rglob("*") if p.is_file()]
    # the generated files (orgs.csv, staff.csv, customers.csv, events.jsonl), the feed and the suppliers'
    # files; reports the loads write under loads/ (rejects masked, discrepancies) are not contract files
    contract = [
        p for p in files
        if p.suffix in (".csv", ".jsonl") and (home / "loads" not in p.parents or p.name in CONTRACT)
    ]  # fmt: skip
    assert contract == [], contract
    assert not (home / "demo").exists()
    found = re.search(r"into (\S+) \(removed", r.stderr.replace("\n", " "))
    assert found, r.stderr
    scratch = Path(found.group(1))
    assert not scratch.exists() and not scratch.parent.exists()
    assert not scratch.is_relative_to(home)
    for path in [home, *home.rglob("*")]:
        want = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
