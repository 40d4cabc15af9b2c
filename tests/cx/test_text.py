"""Chinese feedback text (X4): sentiment on bank feedback, topics from YAML keyword groups, the labelled set
and the shipped model's held-out accuracy, topics files refused with their file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnibank.cx import text
from omnibank.cx.text import analyse, analyse_one, held_out, labelled_set, load_topics, parse_topics
from omnibank.errors import InputRefused

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "sentence",
    [
        "网点排队等了快两个小时，窗口只开一个，太离谱了",
        "手机银行登录一直闪退，转账也失败，非常失望",
        "信用卡年费乱收，客服还推来推去，差评",
    ],
)
def test_clear_complaints_are_negative(sentence: str) -> None:
    assert sentence not in {r.text for r in labelled_set()}
    result = analyse_one(sentence)
    assert result.label == "negative"
    assert result.sentiment < text.NEGATIVE_BELOW


@pytest.mark.parametrize(
    "sentence",
    [
        "柜员阿姨很耐心，帮我把业务一次办好，非常感谢",
        "积分换的瑞幸咖啡券很好用，这个权益很满意",
        "客服态度很好，问题很快就解决了，点赞",
    ],
)
def test_clear_praise_is_positive(sentence: str) -> None:
    assert sentence not in {r.text for r in labelled_set()}
    result = analyse_one(sentence)
    assert result.label == "positive"
    assert result.sentiment > text.POSITIVE_ABOVE


def test_topics_are_matched_in_the_files_order() -> None:
    queue, app, fees = analyse(
        ["网点排队太久，叫号也乱", "手机银行闪退，验证码收不到", "分期手续费和年费都太贵"]
    )
    assert queue.topics == ("queue",)
    assert app.topics == ("app",)
    assert fees.topics == ("fees", "installment")
    assert analyse_one("今天天气不错").topics == ()


def test_a_batch_keeps_order_and_repeats() -> None:
    texts = ["服务很好", "太慢了", "服务很好", ""]
    results = analyse(texts)
    assert [r.label for r in results[:3]] == ["positive", "negative", "positive"]
    assert results[0] == results[2]
    assert results[3].sentiment == 0.5 and results[3].label == "neutral" and results[3].topics == ()
    assert all(0.0 <= r.sentiment <= 1.0 and round(r.sentiment, 3) == r.sentiment for r in results)


def test_labels_follow_the_thresholds() -> None:
    assert text.label_of(0.399) == "negative"
    assert text.label_of(0.4) == "neutral"
    assert text.label_of(0.6) == "neutral"
    assert text.label_of(0.601) == "positive"


def test_the_labelled_set() -> None:
    rows = labelled_set()
    assert len(rows) >= 300
    assert {r.label for r in rows} == {"pos", "neg"}
    assert len({r.text for r in rows}) == len(rows)
    parts = [text.split_of(r.text) for r in rows]
    assert 0.25 < parts.count("held_out") / len(rows) < 0.42  # about a third, fixed by each text's hash


def test_held_out_accuracy_of_the_shipped_model() -> None:
    rows = held_out()
    assert len(rows) >= 100
    assert text.accuracy(rows) >= 0.85


def test_negation_marks_the_next_word() -> None:
    assert text.words("不耐心") == ["不", "不:耐心"]
    assert text.words("很耐心，不") == ["很", "耐心", "不"]


def test_the_default_topics_are_the_examples() -> None:
    shipped = (ROOT / "src/omnibank/cx/data/topics.yaml").read_bytes()
    assert shipped == (ROOT / "examples/cx/topics.yaml").read_bytes()
    topics = load_topics(ROOT / "examples/cx/topics.yaml")
    assert topics.ids == load_topics().ids
    assert {"queue", "app", "fees", "points", "coupon", "staff", "card_limit", "installment", "wealth",
            "hotline"} <= set(topics.ids)  # fmt: skip
    assert topics.labels["queue"] == "排队等候"


def test_a_bad_topics_file_is_refused_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text(
        "topics:\n"
        "  - id: queue\n"
        "    label: 排队等候\n"
        "    keywords: [排队]\n"
        "  - id: Bad-Id\n"
        "    label: 坏\n"
        "    keywords: []\n",
        encoding="utf-8",
    )
    with pytest.raises(InputRefused) as refused:
        load_topics(path)
    message = str(refused.value)
    assert str(path) in message
    assert "topics.1.id (line 5)" in message
    assert "topics.1.keywords (line 7)" in message


def test_duplicate_ids_unknown_fields_and_bad_yaml_are_refused() -> None:
    twice = "topics:\n  - {id: a, label: 甲, keywords: [x]}\n  - {id: a, label: 乙, keywords: [y]}\n"
    with pytest.raises(InputRefused, match="a more than once"):
        parse_topics(twice, source="t.yaml")
    with pytest.raises(InputRefused, match=r"topics\.0\.colour \(line 2\)"):
        parse_topics("topics:\n  - {id: a, label: 甲, keywords: [x], colour: red}\n", source="t.yaml")
    with pytest.raises(InputRefused, match="t.yaml: not valid YAML at line"):
        parse_topics("topics: [\n", source="t.yaml")
    with pytest.raises(InputRefused, match="no such file"):
        load_topics(Path("/nonexistent/topics.yaml"))
