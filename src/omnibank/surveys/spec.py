"""Survey definitions: YAML validated by Pydantic, every problem named with its file, field and line.

::

    surveys:
      - id: csat_branch
        name: 网点服务满意度
        asks: [csat, comment]            # nps (0–10), csat (1–5), ces (1–7), comment (free text)
        question: 您对本次网点服务满意吗？
        channel: sms                     # how the invitation goes (a contact channel)
        gap: 30d                         # this survey's fatigue window (default: OMNIBANK_SURVEY_GAP_DAYS)
        triggers:
          - event: branch.visit          # after an event of this type …
            where: channel = 'branch'    # … matching this condition over its fields (optional)
            delay: 2h                    # … this long after it

A survey is also placed on a journey as a step (``survey: csat_branch``, see docs/journeys.md). Either way
the invitation is a send with purpose ``survey`` under the one contact policy: at most one survey per
customer in the gap across all surveys, none while a complaint of theirs is open, never on do-not-disturb,
never in the quiet hours.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from omnibank.config import Settings
from omnibank.errors import NotFound
from omnibank.journeys.spec import Duration, EventType, Id
from omnibank.kit.delivery import Channel
from omnibank.kit.loading import read_text_file
from omnibank.kit.specfile import validate_yaml
from omnibank.segments.expr import EventPredicate, ExpressionError, event_predicate, parse_event_condition

Question = Literal["nps", "csat", "ces", "comment"]
#: the score range of each scored question
SCALES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SurveyTrigger(_Model):
    event: EventType = Field(description="Invite after an event of this type, e.g. branch.visit.")
    where: str | None = Field(None, description="A condition over the event's fields.")
    delay: Duration = Field(timedelta(hours=1), description="How long after the event the invitation goes.")

    @model_validator(mode="after")
    def _condition(self) -> SurveyTrigger:
        if self.where is not None:
            try:
                parse_event_condition(self.where)
            except ExpressionError as exc:
                raise ValueError(exc.message) from None
        return self

    def predicate(self) -> EventPredicate:
        return event_predicate(parse_event_condition(self.where) if self.where else None)


class SurveySpec(_Model):
    id: Id
    name: str = Field(min_length=1, max_length=100)
    asks: list[Question] = Field(min_length=1, description="The questions: nps, csat, ces, comment.")
    question: str = Field(min_length=1, max_length=200, description="What the invitation asks, in words.")
    channel: Channel = "sms"
    gap: Duration | None = Field(None, description="This survey's fatigue window (default: the policy's).")
    triggers: list[SurveyTrigger] = Field(default_factory=list)

    @model_validator(mode="after")
    def _asks(self) -> SurveySpec:
        if len(set(self.asks)) != len(self.asks):
            raise ValueError("asks: a question is listed twice")
        return self

    @property
    def gap_days(self) -> int | None:
        return None if self.gap is None else max(1, round(self.gap / timedelta(days=1)))


class SurveyFile(_Model):
    surveys: list[SurveySpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SurveyFile:
        ids = [s.id for s in self.surveys]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"survey ids repeated: {', '.join(repeated)}")
        return self


def parse_surveys(text: str, *, source: str = "surveys") -> dict[str, SurveySpec]:
    """The surveys of a YAML text by id; refused with every problem's field and line."""
    doc = validate_yaml(text, SurveyFile, source=source, kind="surveys", shape="surveys: a list of surveys")
    return {s.id: s for s in doc.value.surveys}


def load_surveys(path: Path) -> dict[str, SurveySpec]:
    return parse_surveys(read_text_file(path), source=str(path))


def surveys_of(settings: Settings) -> dict[str, SurveySpec]:
    """The bank's surveys (``OMNIBANK_SURVEYS_FILE``; none when it is not set)."""
    return load_surveys(settings.surveys_file) if settings.surveys_file is not None else {}


def survey_of(settings: Settings, survey_id: str) -> SurveySpec:
    surveys = surveys_of(settings)
    if survey_id not in surveys:
        known = ", ".join(sorted(surveys)) or "none: set OMNIBANK_SURVEYS_FILE"
        raise NotFound(f"survey: no survey {survey_id!r} (surveys: {known})")
    return surveys[survey_id]
