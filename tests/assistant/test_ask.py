"""The answering assistant: each shipped FAQ entry answers its own question first; a benefit's usage question
finds the benefit's instructions and steps; an off-topic question is not guessed at but recorded, digits
masked; the index follows the FAQ files and the catalogue; FAQ files in YAML and Markdown, refused when
wrong; bad questions are refused with clear messages; the `omnibank ask` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from omnibank.assistant import knowledge, service
from omnibank.assistant.knowledge import KnowledgeIndex, Passage
from omnibank.assistant.models import AssistantQuestion
from omnibank.benefits import catalogue, loading
from omnibank.config import Settings
from omnibank.db import unit_of_work
from omnibank.errors import AppError, InputRefused
from tests.benefits.helpers import EXAMPLE, NOW, load, small_catalogue
from tests.conftest import Env, write

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "faq"
ENTRIES = knowledge.read_faq(SHIPPED)


def _example_benefits() -> list[Passage]:
    """The example catalogue's benefits as passages, read from its file (as the store would give them)."""
    return [
        knowledge.benefit_passage(
            benefit_id=b.id, name=b.name, type_=b.type, instructions=b.usage_instructions,
            steps=b.redemption_steps,
        )
        for b in loading.read_catalogue(EXAMPLE).benefits
    ]  # fmt: skip


@pytest.fixture(scope="module")
def shipped_index() -> KnowledgeIndex:
    return KnowledgeIndex.build([*ENTRIES, *_example_benefits()])


def _ask(
    settings: Settings, question: str, *, folder: Path | None = SHIPPED, **kw: object
) -> service.AnswerRead:
    with unit_of_work(settings) as session:
        return service.ask(
            session, question, now=NOW, settings=settings, actor="test:pytest", channel="cli", source="cli",
            folder=folder, **kw,  # type: ignore[arg-type]
        )  # fmt: skip


def _rows(settings: Settings) -> list[AssistantQuestion]:
    with unit_of_work(settings) as session:
        rows = list(session.scalars(select(AssistantQuestion).order_by(AssistantQuestion.id)))
        session.expunge_all()
    return rows


def test_the_shipped_faq_is_a_real_one() -> None:
    assert len(ENTRIES) >= 30
    assert len({e.id for e in ENTRIES}) == len(ENTRIES)
    assert {e.category for e in ENTRIES} >= {"card", "benefit", "app", "elder", "service"}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_each_faq_entry_answers_its_own_question_first(shipped_index: KnowledgeIndex, entry: Passage) -> None:
    terms = knowledge.tokens(entry.title)
    hits = shipped_index.search(terms, top=3)
    assert hits and hits[0].passage.source == entry.source, [h.passage.source for h in hits]
    assert service.confidence(shipped_index, terms, hits[0]) >= service.CONFIDENCE


@pytest.mark.parametrize(
    ("question", "benefit"),
    [
        ("瑞幸券怎么用", "luckin_voucher"),
        ("京东E卡怎么绑定", "jd_ecard_50"),
        ("盲盒礼品怎么领取", "blind_box"),
        ("分期手续费折扣券如何使用", "installment_discount"),
    ],
)
def test_a_benefit_usage_question_finds_the_benefits_own_terms(env: Env, question: str, benefit: str) -> None:
    load(EXAMPLE)
    answer = _ask(env.settings, question)
    assert answer.answered and answer.intent == "general"
    first = answer.passages[0]
    assert first.source == f"benefit:{benefit}" and first.kind == "benefit"
    with unit_of_work(env.settings) as session:
        stored = catalogue.get_benefit(session, benefit)
    assert first.text == stored.usage_instructions and list(first.steps) == stored.redemption_steps
    assert [p.score for p in answer.passages] == sorted((p.score for p in answer.passages), reverse=True)


def test_an_off_topic_question_is_not_guessed_but_recorded_with_digits_masked(env: Env) -> None:
    load(EXAMPLE)
    answer = _ask(env.settings, "明天天气怎么样? 电话13812345678, 身份证110101199001011234")
    assert not answer.answered and answer.passages == [] and not answer.handed_off
    assert answer.note == service.NOT_HANDED_OFF
    assert answer.confidence < service.CONFIDENCE
    (row,) = _rows(env.settings)
    assert row.question == "明天天气怎么样? 电话138****5678, 身份证1101**********1234" == answer.question
    assert (row.answered, row.handed_off, row.reason, row.channel) == (
        False,
        False,
        service.NOT_HANDED_OFF,
        "cli",
    )
    assert row.customer_id is None and row.actor == "test:pytest" and row.asked_at == NOW


def test_a_question_of_stop_words_only_says_so(env: Env) -> None:
    answer = _ask(env.settings, "请问怎么办呢?")
    assert not answer.answered and answer.note == service.NO_TERMS
    assert _rows(env.settings)[0].reason == service.NO_TERMS


def test_an_answered_question_is_recorded_with_its_top_source_and_score(env: Env) -> None:
    answer = _ask(env.settings, "银行卡丢了怎么办", top=2)
    assert answer.answered and len(answer.passages) == 2
    (row,) = _rows(env.settings)
    assert row.id == answer.question_id and row.answered and row.top_source == "faq:cards.yaml#card-lost"
    assert row.score == answer.passages[0].score and row.confidence == answer.confidence


@pytest.mark.parametrize(
    ("question", "code"),
    [("", "question_empty"), ("   \n\t ", "question_empty"), ("问" * 301, "question_too_long")],
)
def test_bad_questions_are_refused_and_nothing_is_recorded(env: Env, question: str, code: str) -> None:
    with pytest.raises(AppError) as caught:
        _ask(env.settings, question)
    assert caught.value.code == code and "question" in caught.value.message
    assert _rows(env.settings) == []


def test_top_out_of_range_is_refused(env: Env) -> None:
    with pytest.raises(AppError, match="top must be between 1 and 10"):
        _ask(env.settings, "积分会过期吗", top=11)


def test_the_index_follows_the_faq_files_and_the_catalogue(env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "faq"
    write(folder / "a.yaml", "entries:\n  - {id: one, question: 网点营业时间, answer: 九点开门}\n")
    load(small_catalogue(tmp_path))
    assert not _ask(env.settings, "外币兑换需要预约吗", folder=folder).answered
    path = write(
        folder / "b.yaml",
        "entries:\n  - {id: fx, question: '外币兑换需要预约吗?', answer: 兑换5000美元以上请提前一天预约。}\n",
    )
    answer = _ask(env.settings, "外币兑换需要预约吗", folder=folder)
    assert answer.answered and answer.passages[0].source == "faq:b.yaml#fx"
    path.unlink()
    assert not _ask(env.settings, "外币兑换需要预约吗", folder=folder).answered
    # a deactivated benefit no longer faces customers: its terms leave the index
    assert _ask(env.settings, "盲盒怎么领", folder=folder).passages[0].source == "benefit:gift"
    with unit_of_work(env.settings) as session:
        catalogue.set_benefit_status(session, "gift", "inactive", actor="test", now=NOW)
    assert not _ask(env.settings, "盲盒怎么领", folder=folder).answered


def test_markdown_faq_files(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cash.md",
        "# cash\n\n## 外币现钞怎么兑换?\nalso: 换美元; 兑换外币现钞\n\n携带身份证到网点办理。\n\n第二段。\n\n"
        "## 硬币可以存吗?\n\n可以, 请到网点柜台。\n",
    )
    first, second = knowledge.read_faq_file(path)
    assert (first.id, first.source, first.category) == ("cash-1", "faq:cash.md#cash-1", "cash")
    assert first.also == ("换美元", "兑换外币现钞") and first.text == "携带身份证到网点办理。\n\n第二段。"
    assert (second.title, second.text) == ("硬币可以存吗?", "可以, 请到网点柜台。")
    index = KnowledgeIndex.build([first, second])
    assert index.search(knowledge.tokens("怎么换美元"), top=1)[0].passage.id == "cash-1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("entries:\n  - {id: a, question: 问题}\n", "entries.0.answer: Field required"),
        ("entries:\n  - {id: 'a b', question: 问题, answer: 答}\n", "entries.0.id: String should match"),
        ("entries: []\n", "entries: List should have at least 1 item"),
        ("entries: [\n", "not valid YAML"),
    ],
)
def test_a_faq_file_that_cannot_be_used_is_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    write(tmp_path / "bad.yaml", text)
    with pytest.raises(InputRefused, match="FAQ file .*bad.yaml") as caught:
        knowledge.read_faq(tmp_path)
    assert message in caught.value.message


def test_an_id_used_twice_in_the_folder_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "entries:\n  - {id: same, question: 问一, answer: 答一}\n")
    write(tmp_path / "b.yaml", "entries:\n  - {id: same, question: 问二, answer: 答二}\n")
    with pytest.raises(InputRefused, match="b.yaml: entry id 'same' is also used in a.yaml"):
        knowledge.read_faq(tmp_path)


def test_the_default_folder_is_the_shipped_one_unless_configured(env: Env, tmp_path: Path) -> None:
    assert env.settings.faq_folder == SHIPPED
    configured = env.settings.model_copy(update={"faq_dir": tmp_path})
    assert configured.faq_folder == tmp_path.resolve()


def test_cli_ask_prints_the_passages_and_their_sources(env: Env, cli, pinned_clock) -> None:
    load(EXAMPLE)
    result = cli("ask", "瑞幸券怎么用")
    assert result.exit_code == 0, result.stderr
    assert "瑞幸咖啡饮品券" in result.stdout and "benefit:luckin_voucher" in result.stdout
    assert "打开瑞幸咖啡App或小程序" in result.stdout
    as_json = cli("ask", "积分会过期吗", "--top", "2", "--format", "json")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["source"] == "faq:benefits.yaml#points-expire"
    assert "confidence" in as_json.stderr
    unsure = cli("ask", "火星上有没有网点 13812345678")
    assert unsure.exit_code == 0 and "no confident answer" in unsure.stdout
    assert "13812345678" not in unsure.stdout
    empty = cli("ask", " ")
    assert empty.exit_code == 1 and "the question is empty" in empty.stderr


def test_a_new_process_reuses_the_terms_an_earlier_one_cut(env: Env, tmp_path: Path) -> None:
    folder = tmp_path / "faq"
    write(folder / "a.yaml", "entries:\n  - {id: fx, question: '外币兑换需要预约吗?', answer: 提前预约。}\n")
    first = _ask(env.settings, "外币兑换要预约吗", folder=folder)
    (saved,) = (env.settings.home_dir / "assistant").glob("assistant-terms-*.json")
    body = json.loads(saved.read_text(encoding="utf-8"))
    assert "外币" in {t for terms in body["terms"].values() for t in terms}
    # a new process: nothing in memory, the file read instead of cutting the passages again
    knowledge.clear_cache()
    knowledge._memo.clear()
    cuts = knowledge._cuts[0]
    again = _ask(env.settings, "外币兑换要预约吗", folder=folder)
    assert again.passages == first.passages and knowledge._cuts[0] == cuts
    # a file from another version of the word lists (or not JSON) is not used
    saved.write_text(json.dumps({**body, "version": "other"}), encoding="utf-8")
    knowledge.clear_cache()
    knowledge._memo.clear()
    assert _ask(env.settings, "外币兑换要预约吗", folder=folder).passages == first.passages
    assert knowledge._cuts[0] > cuts
