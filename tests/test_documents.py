"""The project's documents stay short, linked and about the project.

- README.md is at most ``README_MAX_LINES`` lines: deeper topics live in docs/.
- No tracked file speaks of how the work was organised (its numbered work periods, its issue numbers):
  comments, docstrings, strings and test names say what and why, and history belongs in git log. Technical
  uses of the word stay (TensorFlow's ``tf.compat.v1.Session``, pytest's ``scope="session"``, a browser or
  HTTP session): the allow-list names each by the shape of its use, never by file. In Python files only
  comments and string literals are read as prose; identifiers are checked for numbered names only, so a
  variable named after a browser handle is code, not a mention.
- Every relative link in README.md and docs/*.md names a file that exists, and every ``#anchor`` into a
  Markdown file (BENCHMARKS.md's sections above all) names a heading that exists.
- Every section of BENCHMARKS.md names the command that reproduces it.
"""
from __future__ import annotations

import io
import re
import subprocess
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 300

# The two words, spelled in parts so that this file passes its own check.
S_WORD, I_WORD = "sess" "ion", "iss" "ue"
# Words about the organisation of the work, in prose.
ORGANISATION = re.compile(
    rf"\b{S_WORD}s?\b"              # a numbered or named work period, and its plural
    rf"|\b{I_WORD}s?\s*#?\s*\d+"     # a numbered issue, or several
    rf"|\b{I_WORD}-\d+"              # a hyphenated issue number
    rf"|\({I_WORD}\b",               # an issue in brackets
    re.IGNORECASE)
# Technical uses of the word, each by the shape of its use (matched on the whole line).
ALLOWED = re.compile(
    rf"\b(?:tf\.compat\.v1|tf|requests|boto3)\.{S_WORD}\b"                          # TF 1 / HTTP clients
    rf"|\bscope\s*=\s*[\"']{S_WORD}[\"']"                                            # pytest fixture scope
    rf"|\b(?:test|pytest|browser|Chromium|WebDriver|HTTP|gRPC)\s+{S_WORD}(?:'s)?\b"   # named kinds
    rf"|<{S_WORD} tmp>",                                                             # pytest's base temp folder
    re.IGNORECASE)
# Identifiers (function, test, variable and section names) that number the work.
NUMBERED_NAME = re.compile(rf"(?:{S_WORD}|{I_WORD})_?\d", re.IGNORECASE)
PROSE_TOKENS = {tokenize.COMMENT, tokenize.STRING} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:  # an exported tree: nothing to ask git
        pytest.skip(f"git ls-files does not run here ({error}); the check needs a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def read_text(path: Path) -> str | None:
    """The file's text, or None for binary files (images) and files deleted but not yet staged."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def python_prose(source: str) -> tuple[str, list[tuple[int, str]]]:
    """SOURCE with everything but comments and string literals blanked (positions kept), and its identifiers."""
    lines = source.splitlines(keepends=True)
    masked = [re.sub(r"[^\n]", " ", line) for line in lines]
    names: list[tuple[int, str]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME:
            names.append((token.start[0], token.string))
        if token.type not in PROSE_TOKENS:
            continue
        (row, col), (end_row, end_col) = token.start, token.end
        for r in range(row, end_row + 1):
            line = lines[r - 1]
            start = col if r == row else 0
            stop = end_col if r == end_row else len(line)
            masked[r - 1] = masked[r - 1][:start] + line[start:stop] + masked[r - 1][stop:]
    return "".join(masked), names


def organisation_words(path: Path, text: str) -> list[str]:
    """Lines of TEXT (from PATH) that speak of the work's organisation, as 'path:line: text'."""
    original = text.splitlines()
    names: list[tuple[int, str]] = []
    prose = text
    if path.suffix == ".py":
        try:
            prose, names = python_prose(text)
        except (tokenize.TokenError, IndentationError, SyntaxError):
            prose = text  # not valid Python: read all of it as prose
    found = []
    for number, line in enumerate(prose.splitlines(), 1):
        full = original[number - 1] if number <= len(original) else line
        allowed = [m.span() for m in ALLOWED.finditer(full)]
        for match in ORGANISATION.finditer(line):
            if not any(start <= match.start() and match.end() <= end for start, end in allowed):
                found.append(f"{path.relative_to(ROOT)}:{number}: {full.strip()}")
                break
    for number, name in names:
        if NUMBERED_NAME.search(name):
            found.append(f"{path.relative_to(ROOT)}:{number}: identifier {name}")
    return found


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move the deeper topic to its page in docs/")


def test_no_file_speaks_of_the_work_organisation():
    found = []
    for path in tracked_files():
        text = read_text(path)
        if text is not None:
            found += organisation_words(path, text)
    assert not found, ("These lines speak of how the work was organised; say what and why instead (history "
                       "belongs in git log), or, for a technical use of the word, name its kind (e.g. 'test "
                       f"{S_WORD}'):\n" + "\n".join(found))


@pytest.mark.parametrize("text, expected", [
    (f"# {S_WORD.title()} 19: musicnn's back end", 1),
    (f"as {S_WORD} 22 found", 1),
    (f"this {S_WORD}'s machine", 1),
    (f"{S_WORD}s 16-22 tried", 1),
    (f"hostile input ({I_WORD} 12)", 1),
    (f"{I_WORD}s 15 and 16 added", 1),
    (f"neither {I_WORD}-16 bar", 1),
    ("with tf.compat.v1.Session(graph=graph) as sess:", 0),
    ('@pytest.fixture(scope="session")', 0),
    ("A headless Chromium session", 0),
    ("Exported once per test session", 0),
    ("keras.backend.clear_session()", 0),
    ("not an issue to patch here", 0),
])
def test_organisation_words_and_their_allow_list(text, expected):
    """The check finds each way the work was spoken of, and lets each technical use through."""
    assert len(organisation_words(ROOT / "example.md", text + "\n")) == expected


def test_python_identifiers_are_code_and_numbered_names_are_not():
    source = (f"{S_WORD} = browser.chrome()\n"
              f"def test_{S_WORD}19_balance():\n"
              '    """Checks the balance."""\n'
              f"    return {S_WORD}.quit()  # closes the {S_WORD} window\n")
    found = organisation_words(ROOT / "example.py", source)
    assert found == [f"example.py:4: return {S_WORD}.quit()  # closes the {S_WORD} window",
                     f"example.py:2: identifier test_{S_WORD}19_balance"]


# ----- links ---------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def without_code(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (others blanked, so numbers stay)."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            lines.append("")
            continue
        lines.append("" if inside else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens and underscores dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in without_code(path.read_text()):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for number, line in enumerate(without_code(path.read_text()), 1):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not destination.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                broken.append(f"{where} (no heading with that anchor in {destination.name})")
    return broken


def test_every_relative_link_and_anchor_in_the_documents_resolves():
    broken = [entry for path in documents() for entry in broken_links(path)]
    assert not broken, "Broken links:\n" + "\n".join(broken)


def test_the_link_check_sees_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n\n## Serving: gRPC vs in-process, 30-s clip\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](BENCHMARKS.md#serving-grpc-vs-in-process-30-s-clip) [gone](nowhere.md) "
                    "[stale](BENCHMARKS.md#cnn-settings-tried)\n```\n[in code](ignored.md)\n```\n")
    broken = broken_links(page, root=tmp_path)
    assert broken == ["page.md:1: nowhere.md (no such file)",
                      "page.md:1: BENCHMARKS.md#cnn-settings-tried (no heading with that anchor in BENCHMARKS.md)"]


def test_slug_matches_github_for_the_benchmark_headings():
    assert slug("Batch tagging throughput (python -m tagging)") == "batch-tagging-throughput-python--m-tagging"
    assert slug("The first `make run` on a clean clone, and its re-run") == \
        "the-first-make-run-on-a-clean-clone-and-its-re-run"
    assert slug("Training throughput: model.fit vs the tf.data input pipeline") == \
        "training-throughput-modelfit-vs-the-tfdata-input-pipeline"


# ----- BENCHMARKS.md -------------------------------------------------------------------------------------------

def test_every_benchmark_section_names_its_command():
    text = (ROOT / "BENCHMARKS.md").read_text()
    opened = re.findall(r"<!-- bench:([\w-]+) -->", text)
    closed = re.findall(r"<!-- /bench:([\w-]+) -->", text)
    assert opened and sorted(opened) == sorted(closed), "every <!-- bench:NAME --> needs its <!-- /bench:NAME -->"
    for name in opened:
        section = re.search(rf"<!-- bench:{re.escape(name)} -->(.*?)<!-- /bench:{re.escape(name)} -->", text, re.S)
        assert "- Command: `" in section.group(1), f"BENCHMARKS.md section {name} names no command"
