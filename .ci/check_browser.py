"""Open every page of the built site in headless Chromium, offline, and check what a reader sees.

Run by `make site-test` after `make book` (and so by `.ci/run`). The site in `_build/html` is served on 127.0.0.1;
Chromium is Debian's (`.ci/run` installs it), driven by playwright through `executable_path`, with every request
that leaves 127.0.0.1 refused. Per page: MathJax typeset every formula (no raw TeX left, no MathJax error nodes),
every image loaded, Markdown tables in outputs rendered (no raw pipes), no code cell wider than the page at
1280 px, every displayed equation whole at 1280 px (inside its column, clear of its number, nothing hidden behind a
scroll bar) and inside its column and clear of its number at a phone's 390 px (where a long formula may scroll), no
figure shown below 0.8 of its size at 1280 px (its inline style or width attribute, else its natural width), no
console or page errors, no request left the machine; on chapter pages the theorem, proof and exercise boxes and the
check cells are there and a solution dropdown opens (in the student edition, `make student`: the exercises and
checks are there and no solution is); every internal link and anchor resolves. A screenshot of each chapter's
first screen goes to `_build/screenshots/`.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

from playwright.sync_api import sync_playwright

SITE = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html")
SHOTS = SITE.parent / "screenshots"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # a page closed while its request (e.g. the browser's favicon.ico probe) was answered: not the site's fault
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _serve() -> http.server.ThreadingHTTPServer:
    server = _Server(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _broken_links(pages: list[Path]) -> list[str]:
    """Relative links whose file or anchor does not exist in the built site."""
    ids: dict[Path, set[str]] = {}
    bad = []
    for page in pages:
        for href in re.findall(r'<a\s[^>]*href="([^"]+)"', page.read_text(encoding="utf-8")):
            url = urlparse(href)
            if url.scheme or href.startswith(("//", "mailto:")):
                continue
            target = page if not url.path else (page.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                bad.append(f"{page.relative_to(SITE)}: {href} (no such file)")
                continue
            if url.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text(encoding="utf-8")))
                if unquote(url.fragment) not in ids[target]:
                    bad.append(f"{page.relative_to(SITE)}: {href} (no such anchor)")
    return bad


CHECK_PAGE = r"""async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = [...document.querySelectorAll('.math')];
  const raw = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60));
  const errors = document.querySelectorAll('mjx-merror, .MathJax_Error').length;
  const images = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const pipes = [...document.querySelectorAll('.cell_output p, .output p')]
    .filter(p => !p.closest('table') && p.textContent.trim().startsWith('|'))
    .map(p => p.textContent.slice(0, 60));
  const wide = [...document.querySelectorAll('div.cell_input pre')]
    .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.split('\n')[0].slice(0, 50));
  const equations = [...document.querySelectorAll('div.math > mjx-container[display="true"]')].map(c => {
    const div = c.parentElement, column = div.parentElement.getBoundingClientRect(), box = c.getBoundingClientRect();
    const number = div.querySelector('span.eqno'), n = number ? number.getBoundingClientRect() : null;
    return {name: div.textContent.replace('#', '').trim().slice(0, 40),
            outside: box.left < column.left - 1 || box.right > column.right + 1,
            overlap: n !== null && n.left < box.right - 1 && n.right > box.left + 1,
            scrolls: c.scrollWidth > c.clientWidth + 1};
  });
  const small = [...document.querySelectorAll('.cell_output img')].filter(i => i.naturalWidth > 0).map(i => {
    // myst-nb gives a retina PNG its logical size as an inline style; else the width attribute or natural size
    const size = parseFloat(i.style.width) || parseFloat(i.getAttribute('width')) || i.naturalWidth;
    return {ratio: i.clientWidth / size, src: i.src.split('/').pop().slice(0, 12)};
  }).filter(i => i.ratio < 0.8).map(i => `${i.src} at ${i.ratio.toFixed(2)}`);
  return {math: math.length, raw, errors, images, pipes, wide, equations, small,
          student: document.title.includes('(student edition)'),
          checks: document.querySelectorAll('div.cell.tag_check').length,
          proofs: document.querySelectorAll('div.proof').length,
          exercises: document.querySelectorAll('div.exercise').length,
          solutions: document.querySelectorAll('div.solution').length};
}"""


def _phone_equations(browser, base: str, pages: list[Path]) -> list[str]:
    """At a phone's width every displayed equation stays inside its column, clear of its number (it may scroll)."""
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.route("**/*", lambda route, request: route.continue_() if urlparse(request.url).hostname == "127.0.0.1"
                  else route.abort())
    bad = []
    for page_path in pages:
        name = str(page_path.relative_to(SITE))
        if not name.startswith("book/") or "math" not in page_path.read_text(encoding="utf-8"):
            continue
        page = context.new_page()
        page.goto(base + name, wait_until="load")
        equations = page.evaluate(CHECK_PAGE)["equations"]
        out = [e["name"] for e in equations if e["outside"] or e["overlap"]]
        if out:
            bad.append(f"{name}: {len(out)} displayed equations leave their column or meet their number at 390 px, "
                       f"e.g. {out[:3]}")
        page.close()
    context.close()
    return bad


def main() -> None:
    pages = sorted(p for p in SITE.rglob("*.html") if "_static" not in p.relative_to(SITE).parts)
    if not pages:
        sys.exit(f"no pages under {SITE}: run `make book` first")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("Debian's chromium is not installed (apt-get install chromium)")
    failures = _broken_links(pages)
    SHOTS.mkdir(parents=True, exist_ok=True)
    server = _serve()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for page_path in pages:
            name = str(page_path.relative_to(SITE))
            if (name in ("search.html", "genindex.html") or name.startswith("_static/")
                    or 'http-equiv="Refresh"' in page_path.read_text(encoding="utf-8")):
                continue  # the search page, template fragments and the redirect of index.html
            page = context.new_page()
            problems: list[str] = []
            outside: list[str] = []

            def route(route, request, outside=outside) -> None:
                if urlparse(request.url).hostname == "127.0.0.1":
                    route.continue_()
                else:
                    outside.append(request.url)
                    route.abort()

            page.route("**/*", route)
            page.on("console", lambda msg, problems=problems: problems.append(f"console {msg.type}: {msg.text}")
                    if msg.type == "error" else None)
            page.on("pageerror", lambda err, problems=problems: problems.append(f"page error: {err}"))
            page.goto(base + name, wait_until="load")
            found = page.evaluate(CHECK_PAGE)
            if found["raw"]:
                problems.append(f"{len(found['raw'])} of {found['math']} formulas not typeset, e.g. {found['raw'][:2]}")
            if found["errors"]:
                problems.append(f"{found['errors']} MathJax error nodes")
            if found["pipes"]:
                problems.append(f"{len(found['pipes'])} Markdown tables in outputs left as raw pipes, e.g. "
                                f"{found['pipes'][:1]}")
            if found["wide"]:
                problems.append(f"{len(found['wide'])} code cells wider than the page at 1280 px, e.g. {found['wide'][:2]}")
            cut = [e["name"] for e in found["equations"] if e["outside"] or e["overlap"] or e["scrolls"]]
            if cut:
                problems.append(f"{len(cut)} displayed equations not whole at 1280 px (split them with aligned or "
                                f"gathered), e.g. {cut[:3]}")
            if found["small"]:
                problems.append(f"{len(found['small'])} figures shown below 0.8 of their size at 1280 px (make them at "
                                f"most flowtutor.plotting.COLUMN_WIDTH inches wide), e.g. {found['small'][:3]}")
            if found["images"]:
                problems.append(f"images that did not load: {found['images'][:3]}")
            if outside:
                problems.append(f"requests outside the site: {sorted(set(outside))[:3]}")
            chapter = name.startswith("book/0") or name.startswith("book/1")
            if chapter and found["student"]:
                if not found["exercises"] or not found["checks"] or found["solutions"]:
                    problems.append(f"student edition: {found['exercises']} exercises, {found['checks']} check cells, "
                                    f"{found['solutions']} solutions (expected exercises and checks, no solution)")
            elif chapter:
                if not found["proofs"] or not found["exercises"] or not found["solutions"] or not found["checks"]:
                    problems.append(f"boxes missing: {found['proofs']} theorem/proof, {found['exercises']} exercise, "
                                    f"{found['solutions']} solution, {found['checks']} check cells")
                else:
                    toggle = page.locator("div.solution .toggle-button, div.solution summary, "
                                          "div.solution button").first
                    if toggle.count():
                        toggle.click()
                        page.wait_for_timeout(300)
                    if not page.locator("div.solution").first.locator("p, div.cell, pre").first.is_visible():
                        problems.append("the first solution does not open")
            if chapter:
                page.evaluate("window.scrollTo(0, 0)")
                page.screenshot(path=str(SHOTS / (page_path.parent.name + ".png")))
            failures += [f"{name}: {m}" for m in problems]
            page.close()
        failures += _phone_equations(browser, base, pages)
        browser.close()
    server.shutdown()
    if failures:
        sys.exit(f"{len(failures)} problems in the site:\n" + "\n".join(failures[:60]))
    print(f"checked {len(pages)} pages in Chromium, offline: math typeset, images loaded, no errors, no outside "
          f"requests, boxes present, equations whole, figures at size, links resolve; screenshots in {SHOTS}")


if __name__ == "__main__":
    main()
