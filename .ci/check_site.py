"""Fail when a page of the built site loads a script, style sheet or font from outside the site.

A static check, run by `make book` after the build: every `src`/`href` of a `<script>` or `<link rel=stylesheet>`
in `_build/html` must be relative, and the MathJax the pages load must be the copy in `_static/mathjax`. (It does
not replace a browser: resources requested by scripts at run time are not seen here.)
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
print(f"checked {len(pages)} pages: every script and style sheet is served by the site, MathJax included")
