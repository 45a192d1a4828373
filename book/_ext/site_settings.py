"""Sphinx settings of the website that a YAML file cannot express.

* MathJax 3 is served from the site itself, so that formulas typeset offline: its ``es5`` bundle ships inside the
  ``django-static-mathjax`` package on PyPI (a book dependency); it is copied to ``_static/mathjax`` after the
  build and ``mathjax_path`` points there.
* Inline scripts that two extensions both add (sphinx-thebe's configuration, added twice by Jupyter Book) are
  written once: declared twice, their ``const`` is a script error in every page.
* The colour mode defaults to "auto" (the theme otherwise starts from an empty mode and logs a console error on a
  reader's first page).
* The repository and issue buttons follow one setting, ``repository.url`` in ``_config.yml``: off while it is empty
  (the book has no public repository yet), on once it is set. The notebook download button stays.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_DIR = "mathjax"


def _mathjax_source() -> Path:
    import mathjax  # the module of django-static-mathjax

    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / "tex-mml-chtml.js").is_file():
        raise RuntimeError(f"MathJax 3 not found at {source}: install the book extra (django-static-mathjax)")
    return source


def _configure(app, config) -> None:
    _mathjax_source()  # fail early, before a long build, if MathJax is missing
    config.mathjax_path = f"{MATHJAX_DIR}/tex-mml-chtml.js"
    options = config.html_theme_options
    has_repository = bool(options.get("repository_url"))
    options["use_repository_button"] = has_repository
    options["use_issues_button"] = has_repository
    if not config.html_context.get("default_mode"):  # else the theme logs "invalid theme mode" on a first visit
        config.html_context = {**config.html_context, "default_mode": "auto"}


def _copy_mathjax(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        shutil.copytree(_mathjax_source(), Path(app.outdir) / "_static" / MATHJAX_DIR, dirs_exist_ok=True)


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("config-inited", _configure, priority=900)
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
