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
* The proof index (``prf-prf.html``) lists each theorem, definition and lemma by its kind and title, grouped by
  chapter in the book's order (sphinx-proof's own index lists bare labels such as ``def-fdiv``).
* ``static/flowtutor.css``: code cells sized so that 80 columns fit the page, and check cells marked.
* The student edition (``FLOWTUTOR_EDITION=student``, built by ``make student``): every solution is removed from the
  pages after it has executed, so the checks that follow it still show their results; the page sources (the
  notebooks with their solutions) are not copied and the download button is off. Students get their notebooks
  from ``make assignments`` (coursework/assignments.py).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from docutils.nodes import Element
from sphinx.transforms import SphinxTransform
from sphinx_proof.domain import ProofDomain, ProofIndex

MATHJAX_DIR = "mathjax"
EDITIONS = ("reader", "student")


def _mathjax_source() -> Path:
    import mathjax  # the module of django-static-mathjax

    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (source / "tex-mml-chtml.js").is_file():
        raise RuntimeError(f"MathJax 3 not found at {source}: install the book extra (django-static-mathjax)")
    return source


class RemoveSolutions(SphinxTransform):
    """The student edition: drops every solution, gated or not (sphinx-exercise's own ``hide_solutions`` drops only
    the opening fence of a gated solution and leaves the cells inside on the page)."""

    default_priority = 20  # after sphinx-exercise has merged gated solutions into one node (priority 10)

    def apply(self) -> None:
        if self.config.flowtutor_edition != "student":
            return
        from sphinx_exercise.nodes import solution_node

        for node in list(self.document.findall(solution_node)):
            node.parent.remove(node)


class TitledProofIndex(ProofIndex):
    """sphinx-proof's index, its entries named by kind and title ("Theorem: Benamou–Brenier"), one group per
    chapter."""

    def generate(self, docnames=None):
        env = self.domain.env
        order = {doc: k for k, doc in enumerate(_book_order(env))}
        groups: dict[str, list] = {}
        entries = sorted(getattr(env, "proof_list", {}).items(),
                         key=lambda item: (order.get(item[1]["docname"], len(order)), item[1]["docname"]))
        for label, proof in entries:
            if docnames and proof["docname"] not in docnames:
                continue
            name = f"{proof['realtype'].capitalize()}: {proof.get('title') or label}"
            chapter = env.titles[proof["docname"]].astext() if proof["docname"] in env.titles else proof["docname"]
            groups.setdefault(chapter, []).append((name, 0, proof["docname"], label, "", "", ""))
        return list(groups.items()), True


class TitledProofDomain(ProofDomain):
    indices = [TitledProofIndex]


def _book_order(env) -> list[str]:
    """The documents in the order of the table of contents, depth first from the root."""
    seen: list[str] = []

    def visit(doc: str) -> None:
        if doc not in seen:
            seen.append(doc)
            for child in env.toctree_includes.get(doc, []):
                visit(child)

    visit(env.config.root_doc)
    return seen


def _record_proof_titles(app, doctree) -> None:
    """Keep each proof box's title (the directive's argument, inline markup stripped) in sphinx-proof's list."""
    head, _, tail = app.config.proof_title_format.partition("%t")
    for node in doctree.findall(lambda n: isinstance(n, Element) and "realtype" in n.attributes):
        title = node.get("title", "")
        if title.startswith(head) and title.endswith(tail):
            title = title[len(head):len(title) - len(tail)]
        label = node.get("label")
        if title and label in getattr(app.env, "proof_list", {}):
            app.env.proof_list[label]["title"] = _plain_math(title).strip()


_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _plain_math(title: str) -> str:
    """The index page loads no MathJax: ``$W_2$`` is shown as W₂, ``$L^1$`` as L¹, ``$\\lambda$`` as λ."""
    def plain(match: re.Match) -> str:
        tex = re.sub(r"\\lambda\b", "λ", match.group(1))
        tex = re.sub(r"_(\d)", lambda m: m.group(1).translate(_SUBSCRIPTS), tex)
        return re.sub(r"\^(\d)", lambda m: m.group(1).translate(_SUPERSCRIPTS), tex)
    return re.sub(r"\$([^$]*)\$", plain, title)


def _configure(app, config) -> None:
    _mathjax_source()  # fail early, before a long build, if MathJax is missing
    config.flowtutor_edition = os.environ.get("FLOWTUTOR_EDITION", config.flowtutor_edition)
    if config.flowtutor_edition not in EDITIONS:
        raise ValueError(f"FLOWTUTOR_EDITION must be one of {EDITIONS}, got {config.flowtutor_edition!r}")
    config.mathjax_path = f"{MATHJAX_DIR}/tex-mml-chtml.js"
    config.html_static_path = [*config.html_static_path, str(Path(__file__).parent / "static")]
    options = config.html_theme_options
    has_repository = bool(options.get("repository_url"))
    options["use_repository_button"] = has_repository
    options["use_issues_button"] = has_repository
    if not config.html_context.get("default_mode"):  # else the theme logs "invalid theme mode" on a first visit
        config.html_context = {**config.html_context, "default_mode": "auto"}
    if config.flowtutor_edition == "student":
        config.html_title = f"{config.html_title or config.project} (student edition)"
        config.html_copy_source = False
        config.html_show_sourcelink = False
        options["use_download_button"] = False


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
    app.setup_extension("sphinx_proof")
    app.add_domain(TitledProofDomain, override=True)
    app.connect("doctree-read", _record_proof_titles)
    app.add_config_value("flowtutor_edition", "reader", "env", [str])
    app.add_transform(RemoveSolutions)
    app.add_css_file("flowtutor.css")
    app.connect("config-inited", _configure, priority=900)
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
