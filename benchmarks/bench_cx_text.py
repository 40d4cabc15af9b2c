"""Benchmark (issue #17, X4): sentiment accuracy on bank feedback, and sentiment + topics for 100k comments.

    python benchmarks/bench_cx_text.py [--comments 100000]

Targets: held-out accuracy of the shipped model ≥ 85% (the held-out third of
``src/omnibank/cx/data/feedback_labelled.tsv``, fixed by each sentence's hash); sentiment + topics for 100k
comments ≤ 60 s on the 2-core development machine.

Printed beside them: snownlp out of the box on the same held-out sentences (its own segmenter and its model
trained on product reviews) and its speed, and the first use of the model (jieba's dictionary and training).

The comments are made deterministically (``random.Random(17)``) from the clauses of the labelled sentences
(cut at ，): one to five clauses each, joined with ， or 。, so most comments are distinct (a repeated comment
is analysed once, as in real feedback where "服务很好" comes back often; the number of distinct ones and the
average length are printed). The time is for one process, after the model's first use.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import sys
import time

TARGET_ACCURACY = 0.85
TARGET_S = 60.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def comments(texts: list[str], n: int, seed: int = 17) -> list[str]:
    clauses = sorted({c for t in texts for c in re.split("[，。！？,]", t) if c.strip()})
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        k = rnd.choice((1, 2, 3, 3, 4, 5))
        out.append(rnd.choice("，。").join(rnd.choice(clauses) for _ in range(k)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--comments", type=int, default=100_000)
    parser.add_argument("--snownlp-sample", type=int, default=2_000, help="comments to time snownlp on")
    args = parser.parse_args()

    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    from omnibank.cx import text

    t = time.perf_counter()
    text.model()
    first = time.perf_counter() - t
    rows = text.labelled_set()
    held = text.held_out()
    ours = text.accuracy(held)
    print(
        f"labelled set: {len(rows)} sentences, {len(rows) - len(held)} to train, {len(held)} held out; "
        f"first use (jieba dictionary + training): {first:.2f} s"
    )

    t = time.perf_counter()
    import snownlp  # type: ignore[import-untyped]

    loaded = time.perf_counter() - t
    snow = text.accuracy(held, predict=lambda s: snownlp.SnowNLP(s).sentiments)
    print(
        f"held-out accuracy: this model {ours:.1%}; snownlp out of the box {snow:.1%} (import {loaded:.1f} s)"
    )

    batch = comments([r.text for r in rows], args.comments)
    chars = sum(map(len, batch))
    print(
        f"{len(batch):,} comments, {len(set(batch)):,} distinct, "
        f"{chars / len(batch):.1f} characters on average"
    )

    sample = batch[: args.snownlp_sample]
    t = time.perf_counter()
    for s in sample:
        _ = snownlp.SnowNLP(s).sentiments
    snow_s = (time.perf_counter() - t) / len(sample) * len(batch)
    print(f"snownlp out of the box (sentiment only), extrapolated from {len(sample):,}: {snow_s:.0f} s")

    topics = text.load_topics()
    cpu = time.process_time()
    t = time.perf_counter()
    results = text.analyse(batch, topics=topics)
    seconds = time.perf_counter() - t
    cpu = time.process_time() - cpu
    negative = sum(r.label == "negative" for r in results)
    with_topic = sum(bool(r.topics) for r in results)
    print(
        f"sentiment + topics, one process: {seconds:.1f} s ({cpu:.1f} s CPU, {len(batch) / seconds:,.0f} "
        f"comments/s; negative {negative / len(batch):.0%}, with a topic {with_topic / len(batch):.0%}); "
        f"peak RSS {peak_rss_mb():,.0f} MB"
    )
    ok_acc = ours >= TARGET_ACCURACY
    ok_time = seconds <= TARGET_S
    print(f"{'PASS' if ok_acc else 'MISS'}: held-out accuracy {ours:.1%} ≥ {TARGET_ACCURACY:.0%}")
    print(
        f"{'PASS' if ok_time else 'MISS'}: sentiment + topics for {len(batch):,} comments ≤ {TARGET_S:.0f} s"
    )
    return 0 if ok_acc and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
