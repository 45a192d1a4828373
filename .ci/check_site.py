"""Fail when a page of the built site loads a script, style sheet or font from outside the site.

A static check, run by `make book` after the build: every `src`/`href` of a `<script>` or `<link rel=stylesheet>`
in `_build/html` must be relative, and the MathJax the pages load must be the copy in `_static/mathjax`. (It does
not replace a browser: resources requested by scripts at run time are not seen here.) It also fails when the proof
index (`prf-prf.html`) names an entry by its label (`def-fdiv`) or shows raw TeX instead of "Kind: title".
"""

import re
import sys
from pathlib import Path

site = Path("_build/html")
pages = sorted(site.rglob("*.html"))
if not pages:
    sys.exit("no pages under _build/html: did the build run?")
if not (site / "_static" / "mathjax" / "tex-mml-chtml.js").is_file():
    sys.exit("_build/html/_static/mathjax/tex-mml-chtml.js is missing: MathJax is not served by the site")
tag = re.compile(r"<(script|link)\b[^>]*>", re.IGNORECASE)
url = re.compile(r"""\b(?:src|href)\s*=\s*["']((?:https?:)?//[^"']+)["']""", re.IGNORECASE)
bad = []
for page in pages:
    for match in tag.finditer(page.read_text(encoding="utf-8")):
        element = match.group(0)
        if match.group(1).lower() == "link" and "stylesheet" not in element.lower() and "preload" not in element:
            continue  # links to other pages are fine
        for external in url.findall(element):
            bad.append(f"{page.relative_to(site)}: {external}")
if bad:
    sys.exit("pages load resources from outside the site:\n" + "\n".join(sorted(set(bad))[:40]))
index = (site / "prf-prf.html").read_text(encoding="utf-8")
entries = re.findall(r'<a href="[^"#]*#([^"]+)"><code class="xref">([^<]*)', index)
untitled = [text for label, text in entries
            if not re.fullmatch(r"[A-Z][a-z]+: [^$\\]+", text) or text.partition(": ")[2] == label]
if not entries or untitled:
    sys.exit(f"the proof index lists {len(entries)} entries, {len(untitled)} without a plain title: {untitled[:5]}")
print(f"checked {len(pages)} pages: every script and style sheet is served by the site, MathJax included; "
      f"{len(entries)} titled entries in the proof index")
