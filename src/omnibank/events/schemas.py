"""Pydantic I/O of the events API. An event is a JSON object of the data contract (``event_id``, ``type``,
``ts``, ``customer_id`` or an identifier, and the type's fields); the loader checks it field by field."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 10_000

Event = dict[str, Any]


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH)


class EventReject(BaseModel):
    index: int = Field(description="Position of the event in the request (0-based).")
    reason: str


class EventsAccepted(BaseModel):
    loaded: int = Field(description="Events added to the log.")
    duplicates: int = Field(description="Events whose event_id was in the log already (or earlier here).")
    rejected: int
    rejects: list[EventReject] = Field(description="The first 100 rejected events and why.")
