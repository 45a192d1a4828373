"""The coursework: the student edition hides solutions and keeps checks; assignments grade as they should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "coursework"))
import assignments  # noqa: E402
import grade  # noqa: E402

PAGE = textwrap.dedent(
    """\
    ---
    jupytext:
      text_representation: {extension: .md, format_name: myst}
    kernelspec: {display_name: Python 3, language: python, name: python3}
    ---
    # A page

    ```{exercise-start}
    :label: ex-page-double
    ```
    Write `double(x)`. **Checked below:** `double(x)`.
    ```{exercise-end}
    ```

    ```{solution-start} ex-page-double
    :class: dropdown
    ```
    WRITTEN-SOLUTION-TEXT

    ```{code-cell} python3
    def double(x):  # SOLUTION-CODE
        return 2 * x
    ```

    ```{solution-end}
    ```

    ```{code-cell} python3
    :tags: [check]
    assert double(2) == 4  # CHECK-CODE
    ```
    """
)


def _build(tmp_path: Path, edition: str) -> str:
    book = tmp_path / edition
    book.mkdir()
    (book / "index.md").write_text(PAGE)
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (book / "_config.yml").write_text(
        "title: T\nexecute: {execute_notebooks: 'off'}\n"
        "sphinx:\n  extra_extensions: [sphinx_exercise]\n"
        f"  local_extensions: {{site_settings: {ROOT / 'book' / '_ext'}}}\n"
    )
    env = {**os.environ, "FLOWTUTOR_EDITION": edition}
    run = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book), "-W"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return (book / "_build" / "html" / "index.html").read_text()


def test_student_edition_drops_solutions_and_keeps_checks(tmp_path):
    reader, student = _build(tmp_path, "reader"), _build(tmp_path, "student")
    for marker in ("WRITTEN-SOLUTION-TEXT", "SOLUTION-CODE", "CHECK-CODE", "Checked below"):
        assert marker in reader, marker
    assert "WRITTEN-SOLUTION-TEXT" not in student and "SOLUTION-CODE" not in student
    assert "CHECK-CODE" in student and "Checked below" in student
    assert "(student edition)" in student and "(student edition)" not in reader


CHAPTERS = assignments.chapters()


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.parent.name for p in CHAPTERS])
def test_every_exercise_has_a_statement_a_solution_and_checks(chapter):
    nb = json.loads(chapter.read_text())
    found = assignments.exercises(nb, chapter.name)  # raises on a broken layout
    assert found, f"{chapter.name} has no exercises"
    for ex in found:
        assert "**Checked below:**" in ex.statement, f"{ex.label}: the statement does not name what is checked"
        assert ex.checks, f"{ex.label} has no check cell"
        for i in ex.solution:
            cell = nb["cells"][i]
            if cell["cell_type"] == "code":
                assert not any(line.lstrip().startswith("assert ") for line in "".join(cell["source"]).splitlines()), (
                    f"{ex.label}: an assert inside the solution (cell {i}) is hidden with it; move it to a check cell"
                )


def test_exercise_layout_errors_name_the_cell():
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "```{exercise-start}\n:label: ex-a\n```\nDo.\n```{exercise-end}\n```"},
        {"cell_type": "code", "metadata": {"tags": ["check"]}, "source": "assert True"},
    ]}
    with pytest.raises(ValueError, match="cell 1"):
        assignments.exercises(nb, "nb")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[p.parent.name for p in CHAPTERS])
def test_the_reference_solution_passes_every_check_and_an_empty_one_none(tmp_path, chapter):
    release = assignments.write_course(tmp_path, [chapter])[chapter.parent.name]
    source = tmp_path / "source" / chapter.parent.name / chapter.name
    text = release.read_text()
    assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text
    reference = grade.grade(source, "reference", tmp_path)
    empty = grade.grade(release, "empty", tmp_path)
    checks = [g for g in reference if not g.manual]
    assert checks and all(g.score == g.max_score for g in checks), [g for g in checks if g.score != g.max_score]
    assert all(g.score is None for g in reference if g.manual)  # written answers wait for a person
    assert [g.grade_id for g in empty] == [g.grade_id for g in reference]
    assert all(g.score == 0 for g in empty), [g for g in empty if g.score]


def test_grade_rejects_what_is_not_a_chapter_notebook(tmp_path):
    with pytest.raises(ValueError, match="submission"):
        grade.grade(tmp_path / "missing.ipynb", course=tmp_path)
    (tmp_path / "notes.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="unknown chapter"):
        grade.grade(tmp_path / "notes.ipynb", course=tmp_path)
    with pytest.raises(ValueError, match="student"):
        grade.grade(tmp_path / "notes.ipynb", student="a b", course=tmp_path)
