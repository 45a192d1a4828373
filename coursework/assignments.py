"""Assignments from the book's chapters, as an nbgrader course.

Every exercise in a chapter is a run of cells (book/instructors.md): its statement (``exercise-start`` ...
``exercise-end``), its solution (``solution-start`` ... ``solution-end``: a written part and code cells), and then
code cells tagged ``check``, the checks a solution must pass. This script writes an nbgrader course directory:

* ``source/<chapter>/<name>.ipynb``, the instructor's version: the chapter with nbgrader's cell metadata. Solution
  cells are nbgrader "solution" cells (a written answer is also graded by hand, ``WRITTEN_POINTS``), each ``check``
  cell is an autograded test (``CHECK_POINTS``), and every other cell is read-only, so that a submission cannot
  change the chapter its checks depend on.
* ``release/<chapter>/<name>.ipynb``, the student's version, made by ``nbgrader generate_assignment``: solutions
  replaced by ``raise NotImplementedError()`` / "YOUR ANSWER HERE", checks kept, outputs cleared.
* ``nbgrader_config.py`` (course directory, execution timeout) and the gradebook ``gradebook.db``.

Usage: ``python coursework/assignments.py [--out _build/coursework] [chapter ...]`` (default: every chapter).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "coursework"
CHECK_TAG = "check"
CHECK_POINTS = 1  # each check cell, graded automatically
WRITTEN_POINTS = 1  # each written answer (proof, explanation), graded by hand in nbgrader's formgrader
CELL_TIMEOUT_S = 900  # the longest check of the book runs well under a minute on two cores

_EXERCISE = re.compile(r"```\{exercise-start\}[^\n]*\n:label:\s*(\S+)")
_SOLUTION_START = re.compile(r"```\{solution-start\}\s*(\S+)\n(?::[^\n]*\n)*```\n?")
_SOLUTION_END = "```{solution-end}\n```"

CONFIG = f"""# nbgrader settings of the flowtutor course (written by coursework/assignments.py).
c = get_config()  # noqa: F821
c.CourseDirectory.root = {{root!r}}
c.CourseDirectory.db_url = "sqlite:///" + {{db!r}}
c.Execute.timeout = {CELL_TIMEOUT_S}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
"""


@dataclass
class Exercise:
    """One exercise: its label, statement text, and the cell indices of its solution and checks."""

    label: str
    statement: str
    solution: list[int] = field(default_factory=list)
    checks: list[int] = field(default_factory=list)


def chapters() -> list[Path]:
    """The chapter notebooks (``book/NN_name/name.ipynb``), in the order of the table of contents (``_toc.yml``); the
    appendices, which set no exercises, are not chapters."""
    files = re.findall(r"^\s*-\s*file:\s*(\S+)\s*$", (ROOT / "_toc.yml").read_text(), flags=re.MULTILINE)
    return [ROOT / f"{f}.ipynb" for f in files
            if (ROOT / f"{f}.ipynb").is_file() and re.fullmatch(r"\d\d_\w+", Path(f).parent.name)]


def _text(cell: dict) -> str:
    return "".join(cell["source"])


def _statement(text: str) -> str:
    body = text.split("```{exercise-start}", 1)[1].split("```{exercise-end}", 1)[0]
    return body.split("\n```\n", 1)[1].strip() if "\n```\n" in body else body.strip()


def exercises(nb: dict, name: str = "notebook") -> list[Exercise]:
    """The exercises of a chapter, with the layout checked: statement, solution, then one or more check cells."""
    found: list[Exercise] = []
    current: Exercise | None = None
    state = "body"  # body -> statement -> solution -> checks -> body
    for i, cell in enumerate(nb["cells"]):
        text = _text(cell)
        tagged = CHECK_TAG in cell.get("metadata", {}).get("tags", [])
        where = f"{name}, cell {i}"
        if cell["cell_type"] == "markdown" and (match := _EXERCISE.search(text)):
            if state in ("statement", "solution"):
                raise ValueError(f"{where}: exercise {match[1]} starts before the previous one has its checks")
            if "{solution-start}" in text:
                raise ValueError(f"{where}: the statement of {match[1]} and its solution share a cell")
            current = Exercise(match[1], _statement(text))
            found.append(current)
            state = "statement"
        elif cell["cell_type"] == "markdown" and (match := _SOLUTION_START.match(text)):
            if state != "statement" or current is None or match[1] != current.label:
                raise ValueError(f"{where}: solution of {match[1]} not right after its exercise's statement")
            current.solution.append(i)
            state = "solution"
        elif state == "solution":
            if text.strip() == _SOLUTION_END:
                state = "end"
            elif "{solution-end}" in text:
                raise ValueError(f"{where}: the solution-end fence must be alone in its cell")
            elif tagged:
                raise ValueError(f"{where}: a check cell inside the solution of {current.label}")
            else:
                current.solution.append(i)
        elif tagged:
            if state not in ("end", "checks") or cell["cell_type"] != "code":
                raise ValueError(f"{where}: a check cell that does not follow a solution")
            current.checks.append(i)
            state = "checks"
        elif state in ("statement", "end"):
            raise ValueError(f"{where}: exercise {current.label} lacks its {'solution' if state == 'statement' else 'checks'}")
        else:
            state = "body"
    if state in ("statement", "solution", "end"):
        raise ValueError(f"{name}: the last exercise ({current.label}) lacks its solution or checks")
    return found


def chapter_title(nb: dict) -> str:
    """The chapter's title: its first level-one heading."""
    for cell in nb["cells"]:
        for line in _text(cell).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    raise ValueError("the notebook has no level-one heading")


def exercise_list(notebooks: list[Path] | None = None) -> str:
    """Every exercise by chapter, as Markdown for the instructors' page: link, kind, number of checks, first
    sentence of the statement."""
    lines = []
    for path in notebooks or chapters():
        nb = json.loads(path.read_text())
        lines += ["", f"- {{doc}}`{chapter_title(nb)} <{path.parent.name}/{path.stem}>`"]
        for ex in exercises(nb, path.name):
            kind = "coding" if "coding" in ex.statement.lower()[:200] else "proof and check"
            first = re.split(r"(?<=[.?!])\s", ex.statement.replace("\n", " "), maxsplit=1)[0]
            first = re.sub(r"^\*\*[^*]+\*\*\s*", "", first)
            checks = f"{len(ex.checks)} check{'s' * (len(ex.checks) != 1)}"
            lines.append(f"  - {{ref}}`{ex.label}` ({kind}, {checks}): {first}")
    return "\n".join(lines).strip()


def _nbgrader(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = False, points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def source_notebook(nb: dict, name: str = "notebook") -> dict:
    """The instructor's version of a chapter: nbgrader metadata on every cell, the gated solution fences dropped."""
    out = copy.deepcopy(nb)
    roles: dict[int, tuple[str, str]] = {}
    for ex in exercises(nb, name):
        roles.update({i: ("solution", f"{ex.label}-solution-{k}") for k, i in enumerate(ex.solution, 1)})
        roles.update({i: ("check", f"{ex.label}-check-{k}") for k, i in enumerate(ex.checks, 1)})
    cells = []
    for i, cell in enumerate(out["cells"]):
        text = _text(cell)
        if text.strip() == _SOLUTION_END:
            continue
        role, grade_id = roles.get(i, ("read-only", f"{cell['cell_type']}-{i:03d}"))
        if role == "solution":
            if cell["cell_type"] == "markdown":
                written = _SOLUTION_START.sub("", text, count=1).strip()
                cell["source"] = f"**Answer.** {written}" if written else "**Answer.**"
            written = cell["cell_type"] == "markdown"  # nbgrader grades written answers by hand
            cell["metadata"]["nbgrader"] = _nbgrader(grade_id, solution=True, grade=written, points=WRITTEN_POINTS)
        elif role == "check":
            cell["metadata"]["nbgrader"] = _nbgrader(grade_id, grade=True, locked=True, points=CHECK_POINTS)
        else:
            cell["metadata"]["nbgrader"] = _nbgrader(grade_id, locked=True)
        cells.append(cell)
    out["cells"] = cells
    return out


def course_api(out: Path):
    """An nbgrader API on the course directory ``out`` (its config file written, as an instructor's shell uses it)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    # nbgrader runs the `alembic` command of its environment to create a gradebook: find it without an activated venv
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    db = out / "gradebook.db"
    (out / "nbgrader_config.py").write_text(CONFIG.format(root=str(out), db=str(db)))
    config = Config()
    config.CourseDirectory.root = str(out)
    config.CourseDirectory.db_url = f"sqlite:///{db}"
    config.Execute.timeout = CELL_TIMEOUT_S
    config.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    return NbGraderAPI(config=config)


def write_course(out: Path = DEFAULT_OUT, notebooks: list[Path] | None = None) -> dict[str, Path]:
    """Writes the course directory ``out`` for the given chapter notebooks (default: all) and generates their
    releases with nbgrader; returns {assignment: release notebook}. The assignment of ``NN_name/name.ipynb`` is
    ``NN_name``."""
    api = course_api(out)
    releases = {}
    for path in notebooks or chapters():
        assignment = path.parent.name
        target = Path(out).resolve() / "source" / assignment / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nb = json.loads(path.read_text())
        target.write_text(json.dumps(source_notebook(nb, path.name), indent=1, ensure_ascii=False) + "\n")
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            log = result.get("log", "") + result.get("error", "")
            raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n{log}")
        releases[assignment] = target.parents[2] / "release" / assignment / path.name
    return releases


def select(names: list[str]) -> list[Path]:
    """Chapter notebooks by directory (``03_cnf``) or notebook name (``cnf``); all of them for an empty list."""
    known = {key: path for path in chapters() for key in (path.parent.name, path.stem)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown chapter(s) {unknown}; expected one of {sorted(known)}")
    return [known[name] for name in names] or chapters()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter directories or notebook names (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the course directory (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        notebooks = select(args.chapters)
    except ValueError as err:
        parser.error(str(err))
    for assignment, release in write_course(args.out, notebooks).items():
        points = sum(bool(cell["metadata"].get("nbgrader", {}).get("grade")) for cell in json.loads(release.read_text())["cells"])
        print(f"{assignment}: {points} checks, one point each -> {release}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
