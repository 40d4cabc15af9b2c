"""Chinese feedback text (X4): a sentiment score and topics for every survey comment and complaint
description.

**Words.** Text is cut with jieba (a private :class:`jieba.Tokenizer`: jieba's global one, which others may
use, is left as it is) plus the bank's dictionary ``data/bank_dict.txt`` (信用卡, 分期, 积分, 瑞幸, 网点, 排队
…), without jieba's HMM guesses of unknown words (the bank's words are in the dictionary).
Punctuation and spaces are dropped; a negation (不, 没有, 未 …) marks the next word (``不:耐烦``), so that
"不耐心" and "耐心" count apart.

**Sentiment.** snownlp ships a naive-Bayes model trained on product reviews. Out of the box (its own
segmenter and all) it is weak on bank feedback, 72% on the held-out third of ``data/feedback_labelled.tsv``
("排队" or "额度" mean little in a review of a phone), and slow: 9 ms a comment or more, 100k in 15 minutes.
The model here is a multinomial naive Bayes over the jieba words of the labelled set's *training* two thirds
(a sentence's part is fixed by a hash of its text, :func:`split_of`), whose log-odds are added to snownlp's
shipped word log-odds weighted by :data:`PRIOR_WEIGHT`: snownlp knows tens of thousands of general words of
praise and complaint the bank set is too small to see, the bank set knows what they mean at a bank. The
weight and :data:`ALPHA` were chosen by 5-fold cross-validation on the training part only (87% there);
held out: 90% (``benchmarks/bench_cx_text.py``; the tests assert ≥ 85%). Trained in memory on first use
(~0.2 s once jieba's dictionary is loaded, ~1.8 s), kept in the process; nothing is written. Speed: ~20 s of
CPU for 100k comments of ~25 characters, nearly all of it jieba's cut; topics and scoring ~1 s.

snownlp's package is never imported (its ``__init__`` loads every model it has, ~5 s): only its sentiment
model file is read, a marshal dump of word counts per class, located through importlib.

**Topics.** Keyword groups in YAML (``data/topics.yaml``, the same as ``examples/cx/topics.yaml``): a text has
a topic when any of its keywords occurs in it, matched on the text itself (not the words, so that a keyword
jieba would cut differently still matches).

**Personal data.** Feedback text may hold names, phones or card numbers: nothing here logs, keeps or writes
it; the result of an analysis holds the score, the label and the topic ids only.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import importlib.util
import logging
import marshal
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from omnibank.kit.loading import read_text_file
from omnibank.kit.specfile import validate_yaml

DATA = Path(__file__).parent / "data"
BANK_DICT = DATA / "bank_dict.txt"
LABELLED = DATA / "feedback_labelled.tsv"
DEFAULT_TOPICS = DATA / "topics.yaml"

#: below this probability of positive a text is negative; above :data:`POSITIVE_ABOVE` positive
NEGATIVE_BELOW = 0.4
POSITIVE_ABOVE = 0.6
#: the weight of snownlp's shipped word log-odds beside the bank set's own
PRIOR_WEIGHT = 0.75
#: Laplace smoothing of the bank set's word counts
ALPHA = 0.5
#: one part in ``HELD_OUT_EVERY`` of the labelled set is held out (by a hash of the text)
HELD_OUT_EVERY = 3

Label = Literal["negative", "neutral", "positive"]
TOPIC_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

_NEGATORS = frozenset(
    {"不", "没", "没有", "未", "别", "无", "非", "不是", "不会", "不能", "没人", "毫无", "从不", "从没"}
)
_SKIP = re.compile(r"^[\s\W_]+$")


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a text says: ``sentiment`` the probability it is positive (0..1, three decimals), its ``label``
    and its ``topics`` (ids, in the topics file's order). The text itself is not kept."""

    sentiment: float
    label: Label
    topics: tuple[str, ...]


def label_of(sentiment: float) -> Label:
    if sentiment < NEGATIVE_BELOW:
        return "negative"
    if sentiment > POSITIVE_ABOVE:
        return "positive"
    return "neutral"


# ------------------------------------------------------------------------------------------------ topics


class TopicSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=TOPIC_ID.pattern)
    label: str = Field(min_length=1, max_length=40)
    keywords: tuple[str, ...] = Field(min_length=1)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        words = tuple(str(w).strip() for w in value)
        if any(not w for w in words):
            raise ValueError("a keyword is empty")
        return words


class TopicsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: tuple[TopicSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> TopicsFile:
        ids = [t.id for t in self.topics]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"topic ids must be unique: {', '.join(twice)} more than once")
        return self


class Topics:
    """Checked topics, compiled: one pattern per topic (any of its keywords)."""

    def __init__(self, spec: TopicsFile, *, source: str = "topics"):
        self.spec = spec
        self.source = source
        self.ids = tuple(t.id for t in spec.topics)
        self.labels = {t.id: t.label for t in spec.topics}
        self._patterns = tuple(
            (t.id, re.compile("|".join(re.escape(k) for k in sorted(set(t.keywords), key=len, reverse=True))))
            for t in spec.topics
        )

    def of(self, text: str) -> tuple[str, ...]:
        """The ids of the topics ``text`` mentions, in the file's order."""
        return tuple(tid for tid, pattern in self._patterns if pattern.search(text))


def parse_topics(text: str, *, source: str = "topics") -> Topics:
    """Validate a topics file's YAML text; every problem is named with its field and line
    (:mod:`omnibank.kit.specfile`)."""
    doc = validate_yaml(
        text, TopicsFile, source=source, kind="topics", shape="topics: a list of id, label, keywords"
    )
    return Topics(doc.value, source=source)


@functools.cache
def _default_topics() -> Topics:
    return parse_topics(DEFAULT_TOPICS.read_text(encoding="utf-8"), source=str(DEFAULT_TOPICS))


def load_topics(path: Path | None = None) -> Topics:
    """The topics of ``path`` (checked), or the package's default topics."""
    if path is None:
        return _default_topics()
    return parse_topics(read_text_file(path), source=str(path))


# ------------------------------------------------------------------------------------------------ words


@functools.cache
def tokenizer() -> Any:
    """A private jieba tokenizer with the bank's dictionary (its own copy of jieba's dictionary, ~1.8 s to
    load: words another module adds to jieba's global tokenizer never change the cut here)."""
    import jieba  # type: ignore[import-untyped]  # ~0.2 s: imported when text is first cut

    jieba.setLogLevel(logging.WARNING)  # it announces loading the dictionary on stderr
    tk = jieba.Tokenizer()
    tk.initialize()
    tk.load_userdict(str(BANK_DICT))
    return tk


def words(text: str, tk: Any = None) -> list[str]:
    """The words of ``text`` for the sentiment model: jieba's cut without punctuation, negations marking the
    next word, Latin letters lower-cased."""
    if tk is None:
        tk = tokenizer()
    out: list[str] = []
    negate = False
    for w in tk.lcut(text.lower(), HMM=False):
        if _SKIP.match(w):
            negate = False  # a negation ends at punctuation
            continue
        if w in _NEGATORS:
            negate = True
            out.append(w)
            continue
        out.append("不:" + w if negate else w)
        negate = False
    return out


# ------------------------------------------------------------------------------------------------ model


def split_of(text: str) -> Literal["train", "held_out"]:
    """Which part of the labelled set a sentence belongs to, fixed by its text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "held_out" if int.from_bytes(digest[:8], "big") % HELD_OUT_EVERY == 0 else "train"


@dataclass(frozen=True)
class Labelled:
    label: Literal["pos", "neg"]
    text: str


def labelled_set(path: Path = LABELLED) -> list[Labelled]:
    """The labelled bank feedback (``label<TAB>text``, label ``pos`` or ``neg``)."""
    rows: list[Labelled] = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != ["label", "text"]:
            raise ValueError(f"{path}: header must be label<TAB>text")
        for n, row in enumerate(reader, start=2):
            if len(row) != 2 or row[0] not in ("pos", "neg") or not row[1].strip():
                raise ValueError(f"{path}: line {n} is not pos|neg<TAB>text")
            rows.append(Labelled(row[0], row[1].strip()))  # type: ignore[arg-type]
    return rows


@functools.cache
def snownlp_log_odds() -> dict[str, float]:
    """log P(word | pos) − log P(word | neg) of snownlp's shipped sentiment model (add-one smoothed, as
    snownlp reckons them), for the words it has seen; read from its model file without importing snownlp."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:  # pragma: no cover - a dependency
        raise RuntimeError("snownlp is not installed")
    path = Path(spec.origin).parent / "sentiment" / "sentiment.marshal.3"
    with gzip.open(path, "rb") as fh:
        model: dict[str, Any] = marshal.loads(fh.read())  # noqa: S302 - the package's own model file
    pos, neg = model["d"]["pos"], model["d"]["neg"]
    p_total, n_total = float(pos["total"]), float(neg["total"])
    p_none, n_none = float(pos["none"]), float(neg["none"])
    pd, nd = pos["d"], neg["d"]
    return {
        w: math.log(pd.get(w, p_none) / p_total) - math.log(nd.get(w, n_none) / n_total)
        for w in pd.keys() | nd.keys()
    }


class SentimentModel:
    """Naive Bayes over the bank set's words plus snownlp's word log-odds (see the module)."""

    def __init__(
        self, train: Iterable[Labelled], *, prior_weight: float = PRIOR_WEIGHT, alpha: float = ALPHA
    ):
        tk = tokenizer()
        counts = {"pos": Counter[str](), "neg": Counter[str]()}
        docs = Counter[str]()
        for row in train:
            counts[row.label].update(words(row.text, tk))
            docs[row.label] += 1
        vocab = counts["pos"].keys() | counts["neg"].keys()
        v = len(vocab) + 1
        p_den = sum(counts["pos"].values()) + alpha * v
        n_den = sum(counts["neg"].values()) + alpha * v
        self.prior = math.log((docs["pos"] + 1) / (docs["neg"] + 1))
        self.unseen = math.log(alpha / p_den) - math.log(alpha / n_den)
        snow = snownlp_log_odds()
        weights: dict[str, float] = {}
        for w in vocab:
            own = math.log((counts["pos"][w] + alpha) / p_den) - math.log((counts["neg"][w] + alpha) / n_den)
            weights[w] = own + prior_weight * snow.get(w.removeprefix("不:"), 0.0) * (
                -1 if w[:2] == "不:" else 1
            )
        self.snow = snow
        self.prior_weight = prior_weight
        self.weights = weights

    def weight(self, word: str) -> float:
        found = self.weights.get(word)
        if found is not None:
            return found
        if word[:2] == "不:":
            return self.unseen - self.prior_weight * self.snow.get(word[2:], 0.0)
        return self.unseen + self.prior_weight * self.snow.get(word, 0.0)

    def score(self, tokens: Sequence[str]) -> float:
        """The probability that words ``tokens`` are positive (0.5 for no words)."""
        if not tokens:
            return 0.5
        z = self.prior + sum(self.weight(w) for w in tokens)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-min(z, 700.0)))
        e = math.exp(max(z, -700.0))
        return e / (1.0 + e)


_lock = threading.Lock()
_model: SentimentModel | None = None


def model() -> SentimentModel:
    """The shipped model: trained on the labelled set's training part on first use, kept in the process."""
    global _model
    with _lock:
        if _model is None:
            _model = SentimentModel(r for r in labelled_set() if split_of(r.text) == "train")
        return _model


# ------------------------------------------------------------------------------------------------ analysis


def analyse(texts: Sequence[str], *, topics: Topics | None = None) -> list[Feedback]:
    """Sentiment and topics of each text, in order (a text repeated in the batch is analysed once)."""
    topics = topics or load_topics()
    m = model()
    tk = tokenizer()
    seen: dict[str, Feedback] = {}
    out: list[Feedback] = []
    for text in texts:
        found = seen.get(text)
        if found is None:
            p = round(m.score(words(text, tk)), 3)
            found = seen[text] = Feedback(p, label_of(p), topics.of(text))
        out.append(found)
    return out


def analyse_one(text: str, *, topics: Topics | None = None) -> Feedback:
    """Sentiment and topics of one text."""
    return analyse([text], topics=topics)[0]


def accuracy(rows: Sequence[Labelled], predict: Any = None) -> float:
    """The share of ``rows`` whose label the model (or ``predict``: text → probability positive) gets
    right, a probability of positive above 0.5 meaning ``pos``."""
    if not rows:
        return 0.0
    if predict is None:
        scores = [f.sentiment for f in analyse([r.text for r in rows])]
    else:
        scores = [float(predict(r.text)) for r in rows]
    right = sum((s > 0.5) == (r.label == "pos") for s, r in zip(scores, rows, strict=True))
    return right / len(rows)


def held_out() -> list[Labelled]:
    return [r for r in labelled_set() if split_of(r.text) == "held_out"]


__all__ = [
    "NEGATIVE_BELOW",
    "POSITIVE_ABOVE",
    "Feedback",
    "Labelled",
    "SentimentModel",
    "Topics",
    "accuracy",
    "analyse",
    "analyse_one",
    "held_out",
    "label_of",
    "labelled_set",
    "load_topics",
    "parse_topics",
    "split_of",
]
