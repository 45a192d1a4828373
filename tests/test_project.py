"""Project hygiene: ranges in pyproject.toml, exact pins in constraints.txt; notebooks are stored cleared."""

import json
import os
import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from flowtutor.plotting import COLUMN_WIDTH

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, list[Requirement]]:
    """pyproject.toml's runtime dependencies and each extra's, parsed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    return {name: [Requirement(r) for r in reqs] for name, reqs in groups.items()}


def _locked() -> dict[str, Version]:
    """constraints.txt as {normalised name: exact version}; every line in it is an exact pin."""
    locked = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier  # one specifier each
            assert spec.operator == "==", f"constraints.txt must pin exactly: {line!r}"
            locked[canonicalize_name(req.name)] = Version(spec.version)
    return locked


def _check_range(req: Requirement, where: str, locked: dict[str, Version]) -> None:
    ops = {s.operator for s in req.specifier}
    assert ops & {">=", ">", "~="}, f"{where}: {req} states no lower bound"
    assert not ops & {"==", "==="}, f"{where}: {req} is an exact pin (pins belong in constraints.txt)"
    name = canonicalize_name(req.name)
    assert name in locked, f"{where}: {req.name} is not pinned in constraints.txt"
    assert req.specifier.contains(locked[name], prereleases=True), (
        f"{where}: constraints.txt pins {req.name}=={locked[name]}, outside {req.specifier}")


def test_dependencies_are_ranges_pinned_in_constraints():
    locked = _locked()
    groups = _requirements()
    assert groups["dependencies"], "pyproject.toml lists no runtime dependency"
    for group, reqs in groups.items():
        for req in reqs:
            _check_range(req, f"pyproject.toml [{group}]", locked)


def test_environment_yml_installs_the_project_under_constraints():
    """environment.yml adds nothing of its own: pip installs the package with its book and test extras (the ranges
    of pyproject.toml) under constraints.txt (the locked versions); any other pip line obeys the same rule."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    locked, constraints, editable = _locked(), [], []
    for line in pip_section:
        flag, _, arg = line.partition(" ")
        if flag in ("-c", "--constraint"):
            constraints.append(arg.strip())
        elif flag in ("-e", "--editable"):
            editable.append(arg.strip())
        else:
            _check_range(Requirement(line), "environment.yml", locked)
    assert constraints == ["constraints.txt"], constraints
    assert editable == [".[book,test]"], editable


def test_every_notebook_picks_its_device_once():
    """Each notebook of the book chooses DEVICE once, with flowtutor.default_device() (FLOWTUTOR_DEVICE overrides)."""
    for path in _book_notebooks():
        cells = json.loads(path.read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        calls = sum(c.count("default_device()") for c in code)
        assert calls == 1, f"{path.relative_to(ROOT)} calls default_device() {calls} times, not once"
        assert "DEVICE = ft.default_device()" in code[0], f"{path.relative_to(ROOT)}: not in the first code cell"


def _book_notebooks() -> list[Path]:
    return [p for p in (ROOT / "book").rglob("*.ipynb") if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts]


def test_notebooks_are_stored_without_outputs():
    notebooks = _book_notebooks()
    assert notebooks, "no notebooks found under book/"
    for path in notebooks:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} has outputs"


def test_notebook_sources_hold_no_control_characters():
    """A TeX command such as frac or approx, written into a notebook through a non-raw Python string, loses its
    backslash to an escape (a form feed, a bell) and the formula no longer renders: only newlines and tabs belong."""
    bad = []
    for path in (ROOT / "book").rglob("*.ipynb"):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            text = "".join(cell["source"])
            bad += [(path.name, i, repr(ch)) for ch in set(text) if ord(ch) < 32 and ch not in "\n\t"]
    assert not bad, f"control characters in notebook cells: {sorted(bad)}"


def test_plumbing_is_folded():
    """The setup cell (imports, seed, device) and a cell that only draws a figure, checking nothing, show folded
    (the hide-input tag): the reader sees the idea and the check, and opens the axes labels on demand. Figures stay
    at most flowtutor.plotting.COLUMN_WIDTH inches wide, so that the page shows them at full size."""
    unfolded, wide = [], []
    for path in _book_notebooks():
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        for k, cell in enumerate(code):
            text = "".join(cell["source"])
            tags = cell.get("metadata", {}).get("tags", [])
            figure_only = re.match(r"fig(, *\(?[\w, ]+\)?)? *=", text) and "assert" not in text
            if (k == 0 or figure_only) and not {"hide-input", "remove-input"} & set(tags):
                unfolded.append((path.name, k, text.splitlines()[0][:40]))
            wide += [(path.name, k, w) for w in re.findall(r"figsize=\(([\d.]+)", text) if float(w) > COLUMN_WIDTH]
    assert not unfolded, f"setup or figure-only code cells not folded (notebook, code cell, first line): {unfolded}"
    assert not wide, f"figures wider than the text column ({COLUMN_WIDTH} in): {wide}"


def test_notebook_code_fits_the_page():
    """Code lines longer than 80 characters run off the page on the website (book/_ext/static/flowtutor.css)."""
    long = []
    for path in (ROOT / "book").rglob("*.ipynb"):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                long += [(path.name, i, n) for n, line in enumerate("".join(cell["source"]).splitlines()) if len(line) > 80]
    assert not long, f"code lines over 80 characters (notebook, cell, line): {long}"


def test_every_chapter_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    for path in (ROOT / "book").rglob("*.ipynb"):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        assert str(path.relative_to(ROOT).with_suffix("")) in toc, f"{path} is not in _toc.yml"


def test_site_settings_serve_the_book_offline_and_render_output_tables():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert sphinx["local_extensions"] == {"site_settings": "book/_ext"}
    assert sphinx["config"]["nb_render_markdown_format"] == "myst"  # pipe tables in outputs are tables
    assert sphinx["config"]["nb_merge_streams"] is True
    # the repository and issue buttons follow repository.url alone (book/_ext/site_settings.py)
    assert "use_repository_button" not in config.get("html", {}) and "use_issues_button" not in config.get("html", {})
    import sys
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import site_settings

    for url, shown in (("", False), ("https://example.org/flowtutor", True)):
        cfg = SimpleNamespace(mathjax_path=None, html_theme_options={"repository_url": url}, html_context={},
                              html_static_path=[], flowtutor_edition="reader", html_title="T")
        site_settings._configure(None, cfg)
        assert cfg.html_theme_options["use_repository_button"] is shown
        assert cfg.mathjax_path == "mathjax/tex-mml-chtml.js" and cfg.html_context["default_mode"] == "auto"
        assert cfg.html_title == "T" and any(p.endswith("static") for p in cfg.html_static_path)
        assert cfg.html_theme_options.get("use_download_button", True)  # the reader's edition keeps the download
    student = SimpleNamespace(mathjax_path=None, html_theme_options={}, html_context={}, html_static_path=[],
                              flowtutor_edition="student", html_title="T", project="P")
    if "FLOWTUTOR_EDITION" not in os.environ:  # the environment variable overrides the setting
        site_settings._configure(None, student)
        assert student.html_title == "T (student edition)" and student.html_copy_source is False
        assert student.html_theme_options["use_download_button"] is False

