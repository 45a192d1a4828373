"""Every book label cited in the package's docstrings is defined in the book.

Docstrings cite equations and results by their MyST labels, e.g. eq. ``ch4-cfm`` or theorem ``thm-w2-gauss``.
The book defines them as ``$$ ... $$ (label)`` (numbered equations), ``:label: name`` (theorems, definitions,
exercises, labelled math blocks) or ``(name)=`` (section targets), in notebooks' markdown cells and in
Markdown files under ``book/``. A label renamed in a chapter must be renamed in the docstrings too.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, BOOK = ROOT / "flowtutor", ROOT / "book"

# A cited label: a double-backquoted token with a chapter or a directive prefix.
CITED = re.compile(r"``((?:ch\d+|thm|prop|def|lem|cor|ex|sec|fig|alg)-[A-Za-z0-9_-]+)``")
# Equation numbers typed by hand go stale when a chapter changes: cite labels instead.
NUMBERED = re.compile(r"\beq(?:uation)?s?\.?\s*\(\d+(?:\.\d+)*\)")
DEFINED = (
    re.compile(r"\$\$\s*\(([A-Za-z0-9_-]+)\)"),  # $$ ... $$ (label)
    re.compile(r"^\s*:label:\s*([A-Za-z0-9_-]+)\s*$", re.MULTILINE),  # directive option
    re.compile(r"^\s*\(([A-Za-z0-9_-]+)\)=\s*$", re.MULTILINE),  # (target)=
)


def _docstrings() -> dict[str, str]:
    """``{"module.py:qualified.name": docstring}`` for the modules, classes and functions of the package."""
    out = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    out[f"{path.name}:{getattr(node, 'name', '<module>')}"] = doc
    return out


def _book_texts() -> dict[str, str]:
    texts = {}
    for path in sorted(BOOK.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts or "_build" in path.parts:
            continue
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts[str(path.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells if c["cell_type"] == "markdown")
    for path in sorted(BOOK.rglob("*.md")):
        if "_build" not in path.parts:
            texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    return texts


def _defined_labels() -> dict[str, str]:
    labels = {}
    for where, text in _book_texts().items():
        for pattern in DEFINED:
            for label in pattern.findall(text):
                labels.setdefault(label, where)
    return labels


def test_the_collectors_find_citations_and_definitions() -> None:
    cited = {label for doc in _docstrings().values() for label in CITED.findall(doc)}
    defined = _defined_labels()
    # the test must not pass because it found nothing to check
    assert len(cited) >= 15, sorted(cited)
    assert {"ch1-icov", "ch4-cfm"} <= cited
    assert {"ch1-icov", "thm-w2-gauss"} <= set(defined), "the definition patterns no longer match the book"


def test_every_label_cited_in_a_docstring_is_defined_in_the_book() -> None:
    defined = _defined_labels()
    missing = sorted({(label, where) for where, doc in _docstrings().items()
                      for label in CITED.findall(doc) if label not in defined})
    assert not missing, f"docstrings cite labels the book does not define: {missing}"


def test_docstrings_cite_labels_not_typed_equation_numbers() -> None:
    typed = sorted((where, m.group(0)) for where, doc in _docstrings().items() for m in NUMBERED.finditer(doc))
    assert not typed, f"cite the equation's label (eq. ``chN-...``) instead of its number: {typed}"
