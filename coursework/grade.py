"""Grades a submitted chapter notebook with nbgrader and prints its checks.

Usage: ``python coursework/grade.py SUBMISSION.ipynb [--student ID] [--course _build/coursework] [--full]``

The chapter is found from the notebook's name (``cnf.ipynb`` is chapter ``03_cnf``); its assignment is generated in
the course directory if it is not there yet. The submission is copied to ``submitted/<student>/<chapter>/`` and
``nbgrader autograde`` executes it, with the chapter's read-only cells and checks restored from the source version.
It runs in quick mode (``FLOWTUTOR_QUICK=1``, the checks' thresholds hold in both modes) unless ``--full`` is given.
Written answers are left for nbgrader's formgrader. Prints one line per graded cell and the automatic total.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import assignments  # noqa: E402


@dataclass
class Grade:
    """One graded cell of a submission: automatic checks have a score; written answers await a person."""

    grade_id: str
    score: float | None
    max_score: float
    manual: bool


def grade(submission: Path, student: str = "student", course: Path = assignments.DEFAULT_OUT, quick: bool = True) -> list[Grade]:
    """Autogrades ``submission`` (a chapter notebook) for ``student``; returns its graded cells in notebook order."""
    from nbgrader.api import Gradebook

    submission = Path(submission)
    if not submission.is_file() or submission.suffix != ".ipynb":
        raise ValueError(f"submission must be an existing .ipynb file, got {submission}")
    if not student.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"student must be letters, digits, '-' or '_', got {student!r}")
    chapter = assignments.select([submission.stem])[0]
    assignment = chapter.parent.name
    course = Path(course).resolve()
    api = assignments.course_api(course)
    if not (course / "source" / assignment / chapter.name).is_file():
        assignments.write_course(course, [chapter])
    target = course / "submitted" / student / assignment / chapter.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(submission, target)
    previous = os.environ.get("FLOWTUTOR_QUICK")
    os.environ["FLOWTUTOR_QUICK"] = "1" if quick else "0"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbgrader's own SQLAlchemy session warnings
            result = api.autograde(assignment, student, force=True, create=True)
    finally:
        if previous is None:
            os.environ.pop("FLOWTUTOR_QUICK")
        else:
            os.environ["FLOWTUTOR_QUICK"] = previous
    if not result["success"]:
        raise RuntimeError(f"nbgrader autograde failed:\n{result.get('log', '')}{result.get('error', '')}")
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        warnings.simplefilter("ignore")
        notebook = gradebook.find_submission_notebook(chapter.stem, assignment, student)
        grades = [
            Grade(g.name, None if g.needs_manual_grade else g.score, g.max_score, g.cell.cell_type == "markdown")
            for g in notebook.grades
        ]
    source = json.loads((course / "source" / assignment / chapter.name).read_text())
    order = [cell["metadata"]["nbgrader"]["grade_id"] for cell in source["cells"]]
    return sorted(grades, key=lambda g: order.index(g.grade_id))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("submission", type=Path)
    parser.add_argument("--student", default="student", help="the student's id in the gradebook (default: %(default)s)")
    parser.add_argument("--course", type=Path, default=assignments.DEFAULT_OUT, help="course directory (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help="execute in full mode (slower) instead of quick mode")
    args = parser.parse_args(argv)
    try:
        grades = grade(args.submission, args.student, args.course, quick=not args.full)
    except ValueError as err:
        parser.error(str(err))
    for g in grades:
        shown = "by hand" if g.score is None else f"{g.score:g}"
        print(f"{g.grade_id:<40} {shown:>8} / {g.max_score:g}")
    auto = [g for g in grades if not g.manual]
    print(f"checks: {sum(g.score or 0 for g in auto):g} / {sum(g.max_score for g in auto):g}")
    written = [g for g in grades if g.manual]
    if written:
        pending = sum(g.score is None for g in written)
        print(f"written answers: {len(written)} ({pending} to grade by hand in nbgrader's formgrader)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
