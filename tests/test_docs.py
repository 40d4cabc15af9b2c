"""The README and docs/*.md say only what works: every `omnibank …` command they show exists and its
options parse, every relative link resolves, and the README stays a front page.

Where commands are found
* a line of a fenced code block that starts with ``omnibank`` (after an optional ``$ ``); a trailing
  ``# comment`` is ignored, a trailing ``\\`` continues the line, and the command ends at a shell ``|``,
  ``>``, ``<``, ``;`` or ``&&`` standing alone;
* an inline code span that starts with ``omnibank`` (in a table or in prose; a span may wrap lines);
* every code span in the first column of a table whose first header is ``command`` (``omnibank`` is
  implied there when the span leaves it out).

How examples are written (docs/development.md says the same)
* ``[…]`` is an optional part: the command is checked without it and with it (nested brackets work).
* ``a|b`` inside a word gives alternatives for that word (``grant|revoke``, ``--engine duckdb|postgres``);
  inside brackets, `` | `` between spaces gives alternative phrases (``[--rule R | --branch B]``). In a
  table, write the pipe as ``\\|``.
* A value in CAPITALS (``FILE``, ``ID``, ``N``, ``D``, ``C…``) or ``…`` is a placeholder: text values are
  taken as they are, and where the command wants a number or a date the test stands in a sample value.
* ``--help`` after a command path checks only the path.

Code blocks and command tables hold complete examples (every required argument and option given); a span in
prose may name a command without its required arguments (`omnibank campaign simulate` runs …), but an
unknown command or option, or one too many arguments, fails there too.

The command tree is walked the way the CLI resolves it: ``group.get_command(ctx, name)`` one level at a
time (never a precomputed dict, so a lazily loading group works), and each level's arguments are parsed
with ``make_context`` without invoking anything.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

import omnibank.cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_MAX_BYTES = 10 * 1024
README_MAX_LINES = 120


def doc_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


# ------------------------------------------------------------------------------------ finding commands


@dataclass(frozen=True)
class Shown:
    """A command as a doc shows it."""

    path: Path
    line: int
    text: str
    complete: bool  # an example (every required parameter given), not a mention in prose

    def where(self) -> str:
        try:
            name = self.path.relative_to(ROOT)
        except ValueError:
            name = self.path
        return f"{name}:{self.line}"


FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
ENV_PREFIX = re.compile(r"^(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*")


def _is_command(text: str) -> bool:
    return text == "omnibank" or text.startswith("omnibank ")


def _table_cells(line: str) -> list[str]:
    """A table row's cells, split on every unescaped pipe (GitHub splits a row before it reads code
    spans, so a pipe inside code is written ``\\|``)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def find_commands(path: Path, text: str | None = None) -> list[Shown]:
    """Every `omnibank …` command shown in one markdown file."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Shown] = []
    prose: list[tuple[int, str]] = []  # (line number, text) of lines outside code blocks and tables
    in_fence = False
    command_table = False
    pending: tuple[int, str] | None = None  # a code-block line continued with a backslash
    for number, line in enumerate(lines, start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            pending = None
            prose.append((number, ""))
            continue
        if in_fence:
            stripped = line.strip()
            if pending is not None:
                start, joined = pending
                stripped = f"{joined} {stripped}"
                number = start
            if stripped.endswith("\\"):
                pending = (number, stripped[:-1].rstrip())
                continue
            pending = None
            command = ENV_PREFIX.sub("", stripped)
            if _is_command(command):
                found.append(Shown(path, number, command, complete=True))
            prose.append((number, ""))
            continue
        if line.lstrip().startswith("|"):
            prose.append((number, ""))
            cells = _table_cells(line)
            first = cells[0]
            if re.fullmatch(r":?-{3,}:?", first):
                continue
            previous = lines[number - 2] if number >= 2 else ""
            if not previous.lstrip().startswith("|"):  # a header row
                command_table = first.lower() == "command"
                continue
            for column, cell in enumerate(cells):
                for m in SPAN.finditer(cell):
                    span = m.group(1).replace("\\|", "|").strip()
                    if column == 0 and command_table and not _is_command(span):
                        span = f"omnibank {span}"
                    if _is_command(span):
                        found.append(Shown(path, number, span, complete=True))
            continue
        command_table = False
        prose.append((number, line))
    # prose: code spans may wrap onto the next line, never across a blank line
    paragraph: list[tuple[int, str]] = []
    for number, line in [*prose, (len(lines) + 1, "")]:
        if line.strip():
            paragraph.append((number, line))
            continue
        if paragraph:
            joined, starts = "", []
            for n, part in paragraph:
                starts.append((len(joined), n))
                joined += part + " "
            for m in SPAN.finditer(joined):
                span = " ".join(m.group(1).split())
                if _is_command(span):
                    line_no = max(n for offset, n in starts if offset <= m.start())
                    found.append(Shown(path, line_no, span, complete=False))
        paragraph = []
    return found


# ------------------------------------------------------------------------------------ expanding examples

PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:\.[a-z0-9]+)?…?|…)$")  # N, ID, FILE.yaml, C…, …
SHELL_STOP = {"|", ">", ">>", "<", ";", "&&", "||", "2>", "2>&1", "&"}
SAMPLES = ("10", "1", "0", "2026-01-01", "2026-01-01T00:00:00")
MAX_VARIANTS = 256


class ExampleError(ValueError):
    pass


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and brackets."""
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i += len(sep)
            continue
        i += 1
    parts.append(text[start:])
    return parts


def expand_optional(text: str) -> list[str]:
    """Every reading of ``text`` with each ``[...]`` left out or put in (`` | `` inside: alternatives)."""
    depth, quote, open_at = 0, "", -1
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "[":
            if depth == 0:
                open_at = i
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ExampleError("a `]` without its `[`")
            if depth == 0:
                before, inner, after = text[:open_at], text[open_at + 1 : i], text[i + 1 :]
                choices = ["", *_split_top(inner, " | ")]
                return [
                    reading
                    for choice in choices
                    for reading in expand_optional(f"{before} {choice.strip()} {after}")
                ]
    if depth or quote:
        raise ExampleError("an unclosed `[` or quote")
    return [text]


def tokenize(text: str) -> list[list[str]]:
    """Shell-like words, each with its alternatives (``a|b`` outside quotes); stops at a shell operator or
    a ``#`` comment."""
    words: list[list[str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n or text[i] == "#":
            break
        word, alternatives, quoted = "", [], False
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in "\"'":
                end = text.find(ch, i + 1)
                if end < 0:
                    raise ExampleError("an unclosed quote")
                word += text[i + 1 : end]
                quoted = True
                i = end + 1
                continue
            if ch == "\\" and i + 1 < n:
                word += text[i + 1]
                i += 2
                continue
            if ch == "|":
                alternatives.append(word)
                word = ""
                i += 1
                continue
            word += ch
            i += 1
        alternatives.append(word)
        if not quoted and len(alternatives) == 1 and word in SHELL_STOP:
            break
        if not quoted and len(alternatives) > 1 and not any(alternatives):  # `|` or `||` alone: a pipe
            break
        if any(a == "" for a in alternatives) and len(alternatives) > 1:
            raise ExampleError(f"an empty alternative in `{'|'.join(alternatives)}`")
        words.append(alternatives)
    return words


def strip_comment(text: str) -> str:
    """The text before a shell comment (a ``#`` starting a word outside quotes)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


def variants(text: str) -> list[list[str]]:
    """Every argument list an example stands for (without the leading ``omnibank``)."""
    out: list[list[str]] = []
    for reading in expand_optional(strip_comment(text)):
        words = tokenize(reading)
        if not words or words[0] != ["omnibank"]:
            raise ExampleError("does not start with `omnibank`")
        for combo in itertools.product(*words[1:]):
            out.append(list(combo))
            if len(out) > MAX_VARIANTS:
                raise ExampleError(f"more than {MAX_VARIANTS} readings: split the example")
    return out


# ------------------------------------------------------------------------------------ checking one command


def _is(exc: BaseException, name: str) -> bool:
    """Exception kinds by name: Typer may carry its own copy of Click's exceptions."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _message(exc: BaseException) -> str:
    format_message = getattr(exc, "format_message", None)
    return str(format_message() if callable(format_message) else exc)


def _is_group(command: Any) -> bool:
    return callable(getattr(command, "get_command", None))


def _parse(command: Any, name: str, args: list[str], parent: Any, *, complete: bool) -> Any | None:
    """Parse ``args`` for ``command`` (nothing is invoked); placeholders stand in for numbers and dates.
    Returns the context, or None when a mention in prose leaves required parameters out."""
    args = list(args)
    while True:
        try:
            return command.make_context(name, list(args), parent=parent)
        except Exception as exc:
            if not complete and (_is(exc, "MissingParameter") or _is(exc, "NoArgsIsHelpError")):
                return None
            if not _is(exc, "BadParameter") or _is(exc, "MissingParameter"):
                raise
            param = getattr(exc, "param", None)
            replaced = _replace_placeholder(command, name, args, parent, param)
            if replaced is None:
                raise
            args = replaced


def _replace_placeholder(
    command: Any, name: str, args: list[str], parent: Any, param: Any
) -> list[str] | None:
    """The first placeholder of ``args`` whose sample value clears the error on ``param``, replaced."""
    for i, arg in enumerate(args):
        key, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if not PLACEHOLDER.match(value):
            continue
        for sample in SAMPLES:
            trial = [*args[:i], f"{key}{sep}{sample}", *args[i + 1 :]]
            try:
                command.make_context(name, list(trial), parent=parent)
            except Exception as exc:
                if _is(exc, "BadParameter") and getattr(exc, "param", None) is param:
                    continue
            return trial
    return None


@functools.cache
def _root() -> Any:
    """The program's Click group, made once: it keeps each command it has loaded (made again for every
    example, the 400 examples of the docs loaded their commands 1,500 times: 20 s)."""
    return typer.main.get_command(omnibank.cli.app)


def check_args(args: list[str], *, complete: bool) -> str | None:
    """None if ``omnibank ARGS`` names a command and parses; else what is wrong."""
    group: Any = _root()
    ctx: Any = None
    name, path = "omnibank", ["omnibank"]
    if "--help" in args:  # only the path up to it
        for word in args[: args.index("--help")]:
            if not _is_group(group):
                return f"`{' '.join(path)}` has no subcommands (`{word}`)"
            ctx = group.context_class(group, info_name=name, parent=ctx)
            sub = group.get_command(ctx, word)
            if sub is None:
                return f"no command `{word}` in `{' '.join(path)}`"
            group, name = sub, word
            path.append(word)
        return None
    command, rest = group, list(args)
    while True:
        if not rest and getattr(command, "no_args_is_help", False):  # parsing would print the help
            if complete and len(path) > 1:
                return f"`{' '.join(path)}` needs a subcommand"
            return None  # `omnibank` alone names the program; a group named in prose
        try:
            ctx = _parse(command, name, rest, ctx, complete=complete)
        except Exception as exc:
            if _is(exc, "NoArgsIsHelpError"):
                return f"`{' '.join(path)}` needs a subcommand"
            if not _is(exc, "UsageError"):
                raise
            return f"`{' '.join(path)}`: {_message(exc)}"
        if ctx is None or not _is_group(command):
            return None
        # a group stops parsing at its first positional word: the subcommand, and the rest is its own
        remaining = _remaining_after_group_options(command, rest)
        if not remaining:
            if getattr(command, "invoke_without_command", False) or not complete:
                return None
            return f"`{' '.join(path)}` needs a subcommand"
        word, rest = remaining[0], remaining[1:]
        sub = command.get_command(ctx, word)
        if sub is None:
            return f"no command `{word}` in `{' '.join(path)}`"
        command, name = sub, word
        path.append(word)


def _remaining_after_group_options(group: Any, args: list[str]) -> list[str]:
    """The words from the subcommand on: a group's own options come before it."""
    takes_value = {
        opt
        for param in group.params
        if getattr(param, "param_type_name", "") == "option"
        and not (getattr(param, "is_flag", False) or getattr(param, "count", False))
        for opt in getattr(param, "opts", [])
    }
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            return args[i:]
        i += 2 if arg in takes_value else 1
    return []


def check(shown: Shown) -> list[str]:
    """Problems with one shown command, each naming the file and line."""
    try:
        readings = variants(shown.text)
    except ExampleError as exc:
        return [f"{shown.where()}: `{shown.text}`: {exc}"]
    problems = []
    for args in readings:
        problem = check_args(args, complete=shown.complete)
        if problem is not None:
            as_read = " ".join(["omnibank", *args])
            reading = "" if len(readings) == 1 else f" (read as `{as_read}`)"
            problems.append(f"{shown.where()}: `{shown.text}`{reading}: {problem}")
    return problems


# ------------------------------------------------------------------------------------ tests: commands


def test_every_command_in_the_docs_exists_and_parses() -> None:
    shown = [s for path in doc_files() for s in find_commands(path)]
    assert len(shown) >= 100, f"only {len(shown)} commands found in the docs: is the extraction broken?"
    assert any(s.path == README for s in shown)
    problems = [p for s in shown for p in check(s)]
    assert not problems, "commands in the docs that do not parse:\n" + "\n".join(problems)


SAMPLE_DOC = """\
# Sample

```sh
omnibank segment count "age >= 60" --as-of 2026-12-31   # fine
omnibank segment count "age >= 60" --made-up-option 3
omnibank coupons show ID \\
    --bogus
```

| command | what it does |
| --- | --- |
| `segment list` · `segmnt list` | a typo in the second |
| `omnibank contact dnd add C… --reason R [--channel sms\\|wechat]` | fine |
| `omnibank suppliers status ID active` | --reason is required |

Prose may name `omnibank campaign simulate` alone, but not `omnibank campaign simulate A.yaml B C`
nor `omnibank journey
simulat`.
"""


def test_the_command_check_names_file_and_line_of_each_mistake(tmp_path: Path) -> None:
    doc = tmp_path / "sample.md"
    doc.write_text(SAMPLE_DOC, encoding="utf-8")
    shown = find_commands(doc)
    problems = [p for s in shown for p in check(s)]
    text = "\n".join(problems)
    assert f"{doc}:5: " in text and "--made-up-option" in text
    assert f"{doc}:6: " in text and "--bogus" in text
    assert f"{doc}:12: " in text and "no command `segmnt`" in text
    assert f"{doc}:14: " in text and "--reason" in text
    assert f"{doc}:16: " in text and "unexpected extra argument" in text.lower()
    assert f"{doc}:17: " in text and "no command `simulat`" in text
    assert len(problems) == 6, text  # line 4, the first half of 12, 13 and the first mention on 16 pass


@pytest.mark.parametrize(
    ("example", "readings"),
    [
        ("omnibank org tree [--depth N]", [["org", "tree"], ["org", "tree", "--depth", "N"]]),
        (
            "omnibank consent grant|revoke C… X",
            [["consent", "grant", "C…", "X"], ["consent", "revoke", "C…", "X"]],
        ),
        (
            "omnibank budgets set --campaign X [--rule R | --branch B]",
            [
                ["budgets", "set", "--campaign", "X"],
                ["budgets", "set", "--campaign", "X", "--rule", "R"],
                ["budgets", "set", "--campaign", "X", "--branch", "B"],
            ],
        ),
        ('omnibank segment count "a | b [c]" | tail -1', [["segment", "count", "a | b [c]"]]),
        ("omnibank a [--b [--c D]]", [["a"], ["a", "--b"], ["a", "--b", "--c", "D"]]),
    ],
)
def test_optional_parts_and_alternatives_expand(example: str, readings: list[list[str]]) -> None:
    assert variants(example) == readings


def test_placeholders_stand_in_for_numbers_but_real_values_are_checked() -> None:
    assert check_args(["coupons", "show", "ID"], complete=True) is None
    assert check_args(["demo", "--customers", "N"], complete=True) is None
    assert check_args(["org", "tree", "--depth", "two"], complete=True) is not None
    assert check_args(["segment", "--help"], complete=True) is None
    assert check_args(["segmnt", "--help"], complete=True) is not None


# ------------------------------------------------------------------------------------ tests: the front page


def test_the_readme_stays_a_front_page() -> None:
    data = README.read_bytes()
    lines = data.decode("utf-8").splitlines()
    assert len(data) <= README_MAX_BYTES, f"README.md is {len(data):,} bytes; move reference into docs/"
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference into docs/"


def test_the_readme_starts_with_the_two_commands() -> None:
    head = README.read_text(encoding="utf-8").splitlines()[:8]
    assert any(line.startswith("make demo   # ") for line in head), head
    assert any(line.startswith("make test   # ") for line in head), head


# ------------------------------------------------------------------------------------ tests: links

LINK = re.compile(r"(?<!!)\[(?:[^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or m is None:
            continue
        slug = _slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def link_problems(path: Path, root: Path = ROOT) -> Iterator[str]:
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        unquoted = SPAN.sub("", line)
        for m in LINK.finditer(unquoted):
            target = m.group(1) or m.group(2)
            where = f"{path.relative_to(root)}:{number}"
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if root.resolve() not in resolved.parents and resolved != root.resolve():
                yield f"{where}: `{target}` points outside the repository"
                continue
            if not resolved.exists():
                yield f"{where}: `{target}` does not exist"
                continue
            if fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                yield f"{where}: `{target}`: no heading with the anchor #{fragment} in {resolved.name}"


def test_every_relative_link_resolves() -> None:
    problems = [p for path in doc_files() for p in link_problems(path)]
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_broken_links(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## Bad input\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md) [ok](docs/a.md#bad-input) [web](https://example.org/x)\n"
        "[missing](docs/b.md)\n[anchor](docs/a.md#nowhere)\n[outside](../shared/docs/x.md)\n"
        "`[not a link](nowhere.md)`\n",
        encoding="utf-8",
    )
    problems = list(link_problems(page, root=tmp_path))
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4"], problems
