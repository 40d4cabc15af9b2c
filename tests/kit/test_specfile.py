"""YAML documents validated into Pydantic models: every problem named with its field and line, the file
named, later checks naming lines the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from omnibank.errors import InputRefused
from omnibank.kit.specfile import load_yaml, validate_yaml


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z]+$")
    size: int = Field(ge=1)


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    items: list[Item]


GOOD = "name: 例子\nitems:\n  - id: a\n    size: 1\n  - id: b\n    size: 2\n"


def refused(text: str) -> str:
    with pytest.raises(InputRefused) as info:
        validate_yaml(text, Doc, source="x.yaml", kind="thing", shape="name, items")
    return info.value.message


def test_every_problem_named_with_field_and_line() -> None:
    message = refused(GOOD.replace("size: 2", "size: 0").replace("id: a", "id: A") + "extra: 1\n")
    assert message.startswith("x.yaml: thing refused:\n  ")
    assert "items.0.id (line 3): String should match pattern" in message
    assert "items.1.size (line 6): Input should be greater than or equal to 1" in message
    assert "extra (line 7): Extra inputs are not permitted" in message
    assert "thing (line 1): Field required" not in message
    assert "name (line 1): Field required" in refused("items: []\n")


def test_not_yaml_or_not_a_mapping() -> None:
    assert refused("name: [\n").startswith("x.yaml: not valid YAML at line 2")
    assert refused("- 1\n") == "x.yaml: a thing is a mapping (name, items)"


def test_later_checks_name_lines_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(GOOD, encoding="utf-8")
    doc = load_yaml(path, Doc, kind="thing", shape="name, items")
    assert doc.value.items[1].size == 2
    assert doc.line(("items", 1, "size")) == 6
    problem = doc.problem(("items", 1), "sizes must grow by 2")
    assert problem == "items.1 (line 5): sizes must grow by 2"
    assert (
        doc.refuse([problem]).message == f"{path}: thing refused:\n  items.1 (line 5): sizes must grow by 2"
    )
    assert doc.problem((), "empty") == "thing (line 1): empty"
