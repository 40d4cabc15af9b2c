"""YAML documents validated into Pydantic models, every problem named ``field (line N): message``.

The rules, journeys and maps users write are YAML; when one is wrong the person fixing it needs the field
and the line, all of them at once, and the file: ::

    examples/cx/card.yaml: journey map refused:
      stages.1.weight (line 14): weights of stages sum to 0.9, not 1
      stages.0.touchpoints.0.points.0.indicators.2.events.count (line 31): 'app.loginfailed' is …

:func:`validate_yaml` parses and validates (Pydantic's errors become such lines); the :class:`SpecDoc` it
returns keeps the YAML node tree, so checks made after validation (sums, expressions, cross references)
name lines the same way through :meth:`SpecDoc.problem` and :meth:`SpecDoc.refuse`. Always
:class:`~omnibank.errors.InputRefused`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from omnibank.errors import InputRefused
from omnibank.kit.loading import read_text_file

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The line (1-based) of the YAML node at a location (as far as it goes)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node.value[part]
        else:
            found = None
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


def clean_loc(loc: Loc) -> Loc:
    """Pydantic's location without the model names it adds for unions and 'before' validators."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))


def describe(root: yaml.Node | None, loc: Loc, message: str, *, default: str) -> str:
    """``field (line N): message``."""
    line = line_of(root, loc)
    field = ".".join(str(p) for p in loc) or default
    at = f" (line {line})" if line else ""
    return f"{field}{at}: {message}"


@dataclass(frozen=True)
class SpecDoc(Generic[M]):
    """A validated document, with what is needed to name lines in later checks."""

    value: M
    root: yaml.Node | None
    source: str
    kind: str

    def line(self, loc: Loc) -> int | None:
        return line_of(self.root, loc)

    def problem(self, loc: Loc, message: str) -> str:
        return describe(self.root, loc, message, default=self.kind)

    def refuse(self, problems: Sequence[str]) -> InputRefused:
        return refusal(self.source, self.kind, problems)


def refusal(source: str, kind: str, problems: Sequence[str]) -> InputRefused:
    return InputRefused(f"{source}: {kind} refused:\n  " + "\n  ".join(problems))


def validate_yaml(text: str, model: type[M], *, source: str, kind: str, shape: str) -> SpecDoc[M]:
    """Parse ``text`` and validate it as ``model``. ``kind`` names the document ("journey"), ``shape`` the
    fields a mapping of it has, for the message when it is not one."""
    try:
        raw = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputRefused(f"{source}: not valid YAML{where} ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise InputRefused(f"{source}: a {kind} is a mapping ({shape})")
    try:
        value = model.model_validate(raw)
    except ValidationError as exc:
        problems = [
            describe(root, clean_loc(tuple(e["loc"])), e["msg"].removeprefix("Value error, "), default=kind)
            for e in exc.errors()
        ]
        raise refusal(source, kind, problems) from None
    return SpecDoc(value, root, source, kind)


def load_yaml(path: Path, model: type[M], *, kind: str, shape: str) -> SpecDoc[M]:
    """Read a file and :func:`validate_yaml` it, naming the file."""
    return validate_yaml(read_text_file(path), model, source=str(path), kind=kind, shape=shape)


__all__ = ["SpecDoc", "clean_loc", "describe", "line_of", "load_yaml", "refusal", "validate_yaml"]
