"""The assistant's knowledge base: FAQ entries (YAML or Markdown files in a folder) and every active benefit's
usage instructions and redemption steps, as passages indexed with jieba's Chinese word segmentation and BM25.

**Files.** A YAML file holds ``entries`` (each an ``id``, a ``question``, optional ``also`` — other ways of
asking —, an ``answer``) and an optional ``category``; a Markdown file holds one entry per ``## question``
heading, the answer below it, an optional first line ``also: 问法一; 问法二``; its ids are
``<file stem>-<n>``. See ``examples/faq/``. A file that cannot be used is refused with its name and the
entry at fault.

**Index.** Each passage is tokenised with ``jieba.cut_for_search`` (whole words and the shorter words
inside them: "手机银行" is also "手机" and "银行"), lower-cased, without punctuation, stop words or long
digit runs; a passage's questions (or a benefit's name) count twice, its answer once. ``rank_bm25`` counts
the terms; the scores are BM25 with k1 = 1.5, b = 0.75 and Lucene's idf,
``log(1 + (N - n + 0.5) / (n + 0.5))``: Okapi's idf in ``rank_bm25`` is zero or negative for a word in half
the passages or more, which in a young knowledge base (thirty entries) silences words that matter. Per term
the index keeps the passages holding it and their weights (numpy arrays), so a question costs a few array
additions: with 5,000 entries a whole ``ask`` (cut, scored, recorded, committed) takes 4–6 ms at p95
(``benchmarks/bench_assistant.py``).

**Cache.** One index per process, per FAQ folder and store, rebuilt when a FAQ file changes (name, size or
modification time) or the catalogue does (the number of active benefits and the latest ``updated_at``, which
loading the catalogue and (de)activating a benefit set): checking costs a ``stat`` per file and one small
aggregate query per question. Cutting is what building costs — jieba cuts about 150,000 characters a second
here, 5.7 s for 5,000 entries — so the terms of every text cut are kept: in memory (a rebuild cuts only the
changed entries) and in a JSON file under ``<home>/assistant/`` (the next process reads them: a whole
``omnibank ask`` over 5,000 entries goes from 10 s to 4.6 s). The file holds FAQ and catalogue words only,
and is data, never code (no pickle).

**jieba** loads its dictionary (1.5–1.8 s on the 2-core development machine, from its own cache file) the
first time a text is cut, not when this module is imported: ``omnibank --help`` and every other command
never pay it; a server pays it on its first question.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omnibank.benefits import views
from omnibank.benefits.models import Benefit
from omnibank.errors import InputRefused

K1 = 1.5
B = 0.75
FAQ_SUFFIXES = (".yaml", ".yml", ".md")

#: words jieba's dictionary lacks that the bank's customers use: kept whole
DOMAIN_WORDS = (
    "瑞幸", "联名卡", "饮品券", "立减金", "长辈版", "手机银行", "信用卡", "借记卡", "储蓄卡", "挂失", "补卡",
    "积分商城", "分期", "京东E卡", "E卡", "盲盒", "云闪付", "客服热线", "人工客服", "开卡", "激活",
    "优惠券", "权益", "密码", "短信验证码", "人脸识别", "投诉", "年费", "额度", "账单", "还款",
)  # fmt: skip
#: words that say nothing about what a question is about
_STOP = (
    "的 了 吗 呢 吧 啊 呀 么 嘛 哦 是 在 有 和 与 及 或 也 都 就 还 又 要 会 "
    "能 可以 可 请问 请 问 想 想要 我 我们 你 你们 您 他 她 它 这 那 这个 那个 哪 哪个 哪里 哪儿 "
    "什么 怎么 怎样 怎么样 如何 为什么 为何 多少 几 个 一 一下 一个 下 给 让 被 把 对 从 到 向 跟 着 "
    "过 等 后 前 时 时候 如果 应该 需要 能否 是否 否 不 没 没有 啥 咋 该 得 地 之 其 "
    "怎么办 咋办 你好 您好 谢谢 麻烦 帮 帮我 一下子 呗 哈 嗯 亲 "
    "the a an to of is are how what do i my"
)
STOP_WORDS = frozenset(_STOP.split())
#: the same meaning said two ways: the first is written as the second
SYNONYMS = {
    "使用": "用", "用法": "用", "开通": "开", "开卡": "激活", "卡券": "券", "优惠券": "券", "丢失": "丢",
    "遗失": "丢", "丢了": "丢", "弄丢": "丢", "登陆": "登录", "老年版": "长辈版", "适老版": "长辈版",
    "电话": "热线", "客服电话": "客服热线", "兑奖": "兑换", "领取": "领",
}  # fmt: skip
_TOKEN_OK = re.compile(r"[\w]", re.UNICODE)
_LONG_DIGITS = re.compile(r"^\d{6,}[\dXx]?$")

#: what a benefit's type is called by customers, added to its passage
TYPE_WORDS = {
    "voucher": "券 优惠券 饮品券",
    "instant_discount": "立减金 优惠",
    "e_card": "E卡 礼品卡 卡密",
    "membership": "会员 月卡",
    "points": "积分",
    "physical_gift": "礼品 实物",
    "installment_discount": "分期 折扣券 手续费",
}
_BENEFIT_WORDS = "使用说明 兑换步骤 怎么用 如何使用 领取"


# ------------------------------------------------------------------------------------------------ passages


@dataclass(frozen=True)
class Passage:
    """A unit of knowledge: an FAQ entry or a benefit. ``source`` says where it comes from
    (``faq:<file>#<id>`` or ``benefit:<id>``); ``title`` is the entry's question or the benefit's name."""

    source: str
    kind: Literal["faq", "benefit"]
    id: str
    title: str
    text: str
    steps: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    category: str | None = None

    def asked(self) -> str:
        """The passage's questions (a benefit's name): counted twice in the index."""
        return " ".join((self.title, *self.also))

    def body(self) -> str:
        """The passage's answer (a benefit's instructions, steps and what customers call its type)."""
        extra = ""
        if self.kind == "benefit":
            extra = f"{TYPE_WORDS.get(self.category or '', '')} {_BENEFIT_WORDS}"
        return " ".join((self.text, *self.steps, extra))

    def terms(self) -> list[str]:
        """What the index reads of the passage: its questions twice, its body once."""
        asked = _memo_tokens(self.asked())
        return [*asked, *asked, *_memo_tokens(self.body())]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")
    question: str = Field(min_length=1, max_length=300)
    also: list[str] = Field(default_factory=list)
    answer: str = Field(min_length=1, max_length=5000)
    steps: list[str] = Field(default_factory=list)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str | None = None
    entries: list[_Entry] = Field(min_length=1)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def read_faq_file(path: Path) -> list[Passage]:
    """The entries of one FAQ file (YAML or Markdown), or InputRefused naming the file and the entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputRefused(f"FAQ file {path}: cannot be read ({exc})") from None
    if path.suffix == ".md":
        raw: Any = _markdown_entries(text, path.stem)
    else:
        try:
            raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise InputRefused(f"FAQ file {path}: not valid YAML ({exc})") from None
    try:
        parsed = _File.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputRefused(f"FAQ file {path}: {_field_path(first['loc'])}: {first['msg']}") from None
    return [
        Passage(
            source=f"faq:{path.name}#{e.id}", kind="faq", id=e.id, title=e.question, text=e.answer.strip(),
            steps=tuple(e.steps), also=tuple(a.strip() for a in e.also if a.strip()),
            category=parsed.category,
        )
        for e in parsed.entries
    ]  # fmt: skip


def _markdown_entries(text: str, stem: str) -> dict[str, Any]:
    """``## question`` headings and the text under each; a leading ``also:`` line lists other questions."""
    entries: list[dict[str, Any]] = []
    category = None
    for line in text.splitlines():
        if line.startswith("## "):
            entries.append({"id": f"{stem}-{len(entries) + 1}", "question": line[3:].strip(), "lines": []})
        elif line.startswith("# ") and not entries:
            category = line[2:].strip() or None
        elif entries:
            entries[-1]["lines"].append(line)
    for e in entries:
        lines: list[str] = e.pop("lines")
        body = list(lines)
        while body and not body[0].strip():
            body.pop(0)
        if body and body[0].lower().startswith("also:"):
            e["also"] = [a.strip() for a in re.split(r"[;；]", body.pop(0)[5:]) if a.strip()]
        e["answer"] = "\n".join(body).strip()
    return {"category": category, "entries": entries}


def faq_files(folder: Path | None) -> list[Path]:
    """The FAQ files of ``folder`` (not its sub-folders), by name; none when there is no folder."""
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in FAQ_SUFFIXES)


def read_faq(folder: Path | None) -> list[Passage]:
    """Every entry of the folder's files; an id used twice in the folder is refused."""
    passages: list[Passage] = []
    seen: dict[str, Path] = {}
    for path in faq_files(folder):
        for p in read_faq_file(path):
            if p.id in seen:
                raise InputRefused(f"FAQ file {path}: entry id {p.id!r} is also used in {seen[p.id].name}")
            seen[p.id] = path
            passages.append(p)
    return passages


def benefit_passage(
    *, benefit_id: str, name: str, type_: str, instructions: str, steps: Sequence[str]
) -> Passage:
    """A benefit as a passage: its name, its usage instructions and its redemption steps."""
    return Passage(
        source=f"benefit:{benefit_id}", kind="benefit", id=benefit_id, title=name, text=instructions.strip(),
        steps=tuple(str(s) for s in steps if str(s).strip()), category=type_,
    )  # fmt: skip


def benefit_passages(session: Session) -> list[Passage]:
    """Every active benefit of the catalogue (the benefits read layer), as passages."""
    return [
        benefit_passage(
            benefit_id=b.id, name=b.name, type_=b.type, instructions=b.usage_instructions,
            steps=b.redemption_steps,
        )
        for b in views.catalogue_view(session)
        if b.status == "active"
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------ tokens


@lru_cache(maxsize=1)
def _jieba() -> Any:
    """jieba's tokenizer with the domain words, its dictionary loaded once per process (and quietly)."""
    import jieba  # type: ignore[import-untyped]

    jieba.setLogLevel(logging.WARNING)  # it announces loading the dictionary on stderr
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in DOMAIN_WORDS:
        tokenizer.add_word(word.lower(), freq=20_000)  # text is lower-cased before it is cut
    return tokenizer


def tokens(text: str) -> list[str]:
    """The index's terms of ``text``: jieba's search-mode words, lower-cased, with synonyms folded; without
    punctuation, stop words and digit runs long enough to be a phone, card or ID number."""
    out: list[str] = []
    for raw in _jieba().cut_for_search(text.lower()):
        word = raw.strip()
        if not word or not _TOKEN_OK.search(word) or word in STOP_WORDS or _LONG_DIGITS.match(word):
            continue
        out.append(SYNONYMS.get(word, word))
    return out


#: the terms of texts already cut in this process: jieba cuts about 150,000 characters a second here, so a
#: rebuild after one FAQ file changed cuts that file's entries only
_memo: dict[str, tuple[str, ...]] = {}
_MEMO_MAX = 200_000


_disk: dict[str, tuple[str, ...]] = {}  # terms an earlier process cut, by text key (see knowledge_index)
_cuts = [0]  # texts cut by jieba in this process


def _memo_tokens(text: str) -> tuple[str, ...]:
    found = _memo.get(text)
    if found is None:
        if len(_memo) >= _MEMO_MAX:
            _memo.clear()
        found = _disk.pop(_text_key(text), None) if _disk else None
        if found is None:
            found = tuple(tokens(text))
            _cuts[0] += 1
        _memo[text] = found
    return found


# ------------------------------------------------------------------------------------------------- index


@dataclass(frozen=True)
class Hit:
    """A passage found for a question: its BM25 ``score`` and the question's terms it holds."""

    passage: Passage
    score: float
    matched: frozenset[str]


@dataclass
class KnowledgeIndex:
    """BM25 over passages (see the module's text); build it with :meth:`build`."""

    passages: list[Passage]
    idf: dict[str, float]
    postings: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]
    unknown_idf: float  # the idf of a word no passage holds
    mean_idf: float = 0.0  # what a single character no passage holds weighs (a filler: 亲, 哈)
    faq_entries: int = 0

    @classmethod
    def build(cls, passages: Sequence[Passage]) -> KnowledgeIndex:
        from rank_bm25 import BM25Okapi  # type: ignore[import-untyped]

        passages = list(passages)
        n = len(passages)
        unknown = math.log(1 + (n + 0.5) / 0.5)
        faq = sum(1 for p in passages if p.kind == "faq")
        if not passages:
            return cls([], {}, {}, unknown, unknown, faq)
        corpus = [p.terms() or ["∅"] for p in passages]
        bm25 = BM25Okapi(corpus)  # the counts: terms per passage, passages per term, lengths
        doc_len = np.asarray(bm25.doc_len, dtype=np.float64)
        norm = K1 * (1 - B + B * doc_len / bm25.avgdl)
        idf: dict[str, float] = {}
        where: dict[str, list[int]] = {}
        tfs: dict[str, list[int]] = {}
        for i, freqs in enumerate(bm25.doc_freqs):
            for term, tf in freqs.items():
                where.setdefault(term, []).append(i)
                tfs.setdefault(term, []).append(tf)
        postings = {}
        for term, docs in where.items():
            idf[term] = math.log(1 + (n - len(docs) + 0.5) / (len(docs) + 0.5))
            ids = np.asarray(docs, dtype=np.int64)
            tf = np.asarray(tfs[term], dtype=np.float64)
            postings[term] = (ids, idf[term] * tf * (K1 + 1) / (tf + norm[ids]))
        return cls(passages, idf, postings, unknown, sum(idf.values()) / len(idf), faq)

    def weight(self, term: str) -> float:
        """How much a term of a question says: its idf; a word no passage holds says most (the question is
        about something the knowledge base does not know), except a single character (a filler word)."""
        known = self.idf.get(term)
        if known is not None:
            return known
        return self.mean_idf if len(term) == 1 else self.unknown_idf

    def search(self, terms: Sequence[str], *, top: int) -> list[Hit]:
        """The ``top`` passages by BM25 score for the question's terms (only those scoring above 0), best
        first; ties by the order the passages were read in."""
        if not self.passages or not terms:
            return []
        scores = np.zeros(len(self.passages), dtype=np.float64)
        for term in terms:
            found = self.postings.get(term)
            if found is not None:
                scores[found[0]] += found[1]
        candidates = np.flatnonzero(scores > 0)
        if candidates.size == 0:
            return []
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:top]
        hits = []
        for i in order.tolist():
            held = frozenset(t for t in terms if t in self.postings and _holds(self.postings[t][0], i))
            hits.append(Hit(self.passages[i], float(scores[i]), held))
        return hits


def _holds(ids: NDArray[np.int64], i: int) -> bool:
    k = int(np.searchsorted(ids, i))
    return k < len(ids) and int(ids[k]) == i


# ------------------------------------------------------------------------------------------------- cache


@dataclass
class _Cached:
    fingerprint: tuple[Any, ...]
    index: KnowledgeIndex


_cache: dict[tuple[str, str], _Cached] = {}
_lock = threading.Lock()


def _files_fingerprint(folder: Path | None) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in faq_files(folder):
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _catalogue_fingerprint(session: Session) -> tuple[Any, ...]:
    active = func.count().filter(Benefit.status == "active")
    row = session.execute(select(func.count(), active, func.max(Benefit.updated_at))).one()
    return (int(row[0] or 0), int(row[1] or 0), row[2])


def _terms_version() -> str:
    """What the terms of a text depend on besides the text: jieba's version and this module's word lists."""
    from importlib.metadata import version

    parts = (version("jieba"), DOMAIN_WORDS, sorted(STOP_WORDS), sorted(SYNONYMS.items()))
    return hashlib.blake2b(json.dumps(parts, ensure_ascii=False).encode(), digest_size=8).hexdigest()


def _text_key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _load_terms(path: Path) -> None:
    """Terms cut by an earlier process (JSON, no code: a file the data home holds is data, never run)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(saved, dict) or saved.get("version") != _terms_version():
        return
    texts = saved.get("terms")
    _disk.clear()
    if isinstance(texts, dict):
        _disk.update({k: tuple(v) for k, v in texts.items() if isinstance(v, list)})


def _save_terms(path: Path, passages: Sequence[Passage]) -> None:
    """The terms of these passages' texts, for the next process (written whole, then moved into place)."""
    texts = {t for p in passages for t in (p.asked(), p.body())}
    body = {"version": _terms_version(), "terms": {_text_key(t): list(_memo_tokens(t)) for t in texts}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        part.write_text(json.dumps(body, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        os.replace(part, path)
    except OSError:
        pass  # a cache: the next process cuts the texts again


def knowledge_index(
    session: Session, folder: Path | None, *, store: str, cache_dir: Path | None = None
) -> KnowledgeIndex:
    """The process's index of ``folder``'s FAQ and the store's active benefits, rebuilt when either changed.
    ``store`` names the store (its URL) so that two stores in one process keep two indexes. ``cache_dir``
    keeps the texts' terms for the next process (a command cuts only what changed since the last one)."""
    key = (str(folder.resolve()) if folder else "", store)
    fingerprint = (_files_fingerprint(folder), _catalogue_fingerprint(session))
    cached = _cache.get(key)
    if cached is not None and cached.fingerprint == fingerprint:
        return cached.index
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.fingerprint == fingerprint:
            return cached.index
        passages = [*read_faq(folder), *benefit_passages(session)]
        saved = cache_dir / f"assistant-terms-{_text_key(key[0] + key[1])}.json" if cache_dir else None
        if saved is not None:
            _load_terms(saved)
        cut = _cuts[0]
        index = KnowledgeIndex.build(passages)
        if saved is not None and _cuts[0] > cut:
            _save_terms(saved, passages)
        _cache[key] = _Cached(fingerprint, index)
        return index


def clear_cache() -> None:
    """Forget every index (tests; a long-lived process whose files moved)."""
    with _lock:
        _cache.clear()
