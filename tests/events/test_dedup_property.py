"""Property: however events with repeated ids are split into files and batches, the log ends with each
distinct id once, holding the content of its first occurrence."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from omnibank.config import Settings
from omnibank.events.loader import load_events
from omnibank.kit.crypto import FieldCipher, KeyRing
from tests.events.helpers import event, jsonl, stored

CIPHER = FieldCipher(KeyRing.generate())


@settings(max_examples=20, deadline=None)
@given(
    ids=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=20), max_size=2),
    batch_lines=st.sampled_from([4, 1000]),  # a batch costs ~0.15 s of DuckDB planning: few, still several
)
def test_the_log_holds_each_id_once_with_its_first_content(
    ids: list[int], cuts: list[int], batch_lines: int
) -> None:
    # events: the n-th line carries id ids[n] and a content marker n
    lines = [event(f"id{i}", customer_id=f"line{n}") for n, i in enumerate(ids)]
    bounds = sorted({0, len(lines), *(min(c, len(lines)) for c in cuts)})
    first_seen: dict[str, str] = {}
    for line in lines:
        first_seen.setdefault(line["event_id"], line["customer_id"])

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        config = Settings(home=home / "home", timezone="Asia/Shanghai")
        loaded = duplicates = 0
        for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
            path = jsonl(home / f"part{k}.jsonl", *lines[a:b])
            report = load_events(config, path, cipher=CIPHER, progress=False, batch_lines=batch_lines)
            loaded += report.loaded
            duplicates += report.duplicates

        log = stored(config)

    assert {e: row["customer_id"] for e, row in log.items()} == first_seen
    assert loaded == len(first_seen)
    assert duplicates == len(lines) - len(first_seen)
