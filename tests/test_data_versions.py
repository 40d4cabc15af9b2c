"""Data versions count every change, including two first changes of a kind made at the same time."""

from __future__ import annotations

import threading

from sqlalchemy import delete

from omnibank.db import unit_of_work, versions


def test_each_bump_counts_once(env) -> None:
    with unit_of_work(env.settings) as s:
        before = versions.current(s)["tags"]
        versions.bump(s, "tags")
        versions.bump(s, "tags")
    with unit_of_work(env.settings) as s:
        assert versions.current(s)["tags"] == before + 2


def test_first_bumps_from_concurrent_transactions_all_count(env) -> None:
    with unit_of_work(env.settings) as s:
        s.execute(delete(versions.DataVersion).where(versions.DataVersion.name == "merges"))
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def bump() -> None:
        try:
            barrier.wait()
            with unit_of_work(env.settings) as s:
                versions.bump(s, "merges")
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with unit_of_work(env.settings) as s:
        assert versions.current(s)["merges"] == 4
