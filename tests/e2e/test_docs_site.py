"""End to end: the documentation site as a reader sees it, from disk, with no network.

The built site (``docs/_build/html``, rebuilt first when a source is newer than the last
build) is opened from ``file://`` in Debian's Chromium, driven by Playwright, with every
request other than ``file://`` aborted and recorded. On the index, every theory page, an
API page and a notebook page:

* every equation is typeset by MathJax, which the site serves itself: each math element
  holds MathJax's output, none is a TeX error, no raw ``\\[``, ``\\(``, ``$$`` or
  ``\\begin{`` is left in the visible text, and no font of the page failed to load;
* every image loads, and the buttons of the animation players show their icons;
* every link to the site lands on an existing page and anchor: the navigation and, on the
  API page, the "Eq. (n)" links (the first one is also followed in the browser, and must
  land on a typeset equation);
* no request to another host was attempted, and the browser logged no error.

The search page must find "pseudo-Huber". A picture of each page lands in
``tests/e2e/screenshots/`` (or ``$CMEDU_E2E_ARTIFACTS``).

Without the browser, every page of the site is read to check that each link within the
site lands on an existing anchor (Sphinx's ``linkcheck`` checks only that a local file
exists, not its anchors) and that no page loads a script, style sheet, image or frame from
the network.

Runs inside ``make test`` (after ``make test`` has built the site) and ``make e2e``; about
half a minute when the site is up to date.
"""

from __future__ import annotations

import re
import subprocess
import sys
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pytest
from e2e_support import ROOT, VIEWPORT

pytestmark = pytest.mark.e2e

DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(DOCS), str(SITE)]  # fmt: skip
BUILD_TIMEOUT = 900  # s; a full build takes about half a minute on two busy cores

# The pages a reader opens: the index, every theory page, an API page whose docstrings cite
# many equations, and a notebook with equations, figures and an animation.
PAGES = (
    ["index"]
    + [f"theory/{p.stem}" for p in sorted((DOCS / "theory").glob("*.md"))]
    + ["api/losses", "notebooks/01_pf_ode"]
)
NAVIGATION = ".sidebar-tree a[href], .related-pages a[href], .toc-tree a[href]"
EQ_LINKS = 'a[href*="-eq-"]'
REMOTE_LOADS = ("script", "img", "iframe", "source", "video", "audio", "embed")
PSEUDO_HUBER = re.compile(r"pseudo[-_ ]huber", re.IGNORECASE)
RAW_TEX = ["\\[", "\\]", "\\(", "\\)", "$$", "\\begin{", "\\end{"]


# --- The site, up to date -----------------------------------------------------------------


def _sources() -> list[Path]:
    """What the site is built from: docs/ (less the build and the notebook mirror), the
    notebooks, the package (API pages) and the benchmark results."""
    skip = {DOCS / "_build", DOCS / "notebooks"}
    docs = [p for p in DOCS.rglob("*") if not any(s in p.parents for s in skip)]
    return [
        *docs,
        *(ROOT / "notebooks").glob("*.ipynb"),
        *(ROOT / "cmedu").rglob("*.py"),
        *(ROOT / "benchmarks" / "results").rglob("*.md"),
    ]


@pytest.fixture(scope="module")
def site() -> Path:
    """docs/_build/html, built first (as ``make docs`` does) when it is missing or a source
    is newer than its last build, so that a bare ``pytest`` never checks a stale site."""
    stamp = SITE / ".buildinfo"  # written by every HTML build
    built = stamp.stat().st_mtime if stamp.exists() else float("-inf")
    if any(p.is_file() and p.stat().st_mtime > built for p in _sources()):
        run = subprocess.run(BUILD, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        if run.returncode != 0:
            pytest.fail(
                f"The docs build failed ({' '.join(BUILD)}):\n{run.stdout[-3000:]}"
                f"\n{run.stderr[-3000:]}",
                pytrace=False,
            )
    return SITE


# --- Reading the built pages ------------------------------------------------------------


class _Page(HTMLParser):
    """The anchors (ids, and names of <a>), the links and the loaded resources of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v for k, v in attrs if v is not None}
        self.anchors.update(a[k] for k in ("id", "name") if k in a and (k == "id" or tag == "a"))
        if tag in ("a", "link") and "href" in a:
            self.links.append(a["href"])
        if tag in REMOTE_LOADS and "src" in a:
            self.loads.append(a["src"])
        rel = a.get("rel", "").split()
        if tag == "link" and {"stylesheet", "icon", "preload", "modulepreload"} & set(rel):
            self.loads.append(a.get("href", ""))


@cache
def _read(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _is_remote(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.netloc) or parts.scheme in ("http", "https")


def broken_link(url: str, page: Path) -> str | None:
    """Why ``url`` (a link on ``page``) does not land on the site, or None when it does.
    Links off the site (other hosts, mailto:, javascript:) are not followed."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "file") or (parts.netloc and parts.scheme != "file"):
        return None
    if parts.scheme == "file":
        target = Path(unquote(parts.path))
    else:
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{url}: no file {target}"
    anchor = unquote(parts.fragment)
    if anchor and target.suffix == ".html" and anchor not in _read(target).anchors:
        return f"{url}: no anchor #{anchor} in {target.relative_to(SITE)}"
    return None


def reachable_pages(site: Path) -> list[Path]:
    """The pages a reader can reach from the index, the search page and the general index:
    pages an earlier build left behind (a module since moved) are not part of the site."""
    seen, todo = set(), [site / name for name in ("index.html", "search.html", "genindex.html")]
    while todo:
        page = todo.pop()
        if page in seen or not page.is_file():
            continue
        seen.add(page)
        for url in _read(page).links:
            parts = urlsplit(url)
            if not parts.scheme and not parts.netloc and parts.path.endswith(".html"):
                todo.append((page.parent / unquote(parts.path)).resolve())
    return sorted(seen)


def test_every_link_within_the_site_lands_on_an_anchor(site):
    pages = reachable_pages(site)
    assert len(pages) > 20, f"only {len(pages)} pages in {site}"
    broken, checked = [], 0
    for page in pages:
        for url in _read(page).links:
            checked += 1
            if why := broken_link(url, page):
                broken.append(f"{page.relative_to(site)}: {why}")
    assert checked > 1000, f"only {checked} links on {len(pages)} pages"
    assert not broken, f"{len(broken)} of {checked} links miss:\n" + "\n".join(broken[:40])


def test_a_missing_page_or_anchor_is_caught(site):
    page = site / "api" / "losses.html"
    assert broken_link("../theory/training.html#cm-eq-10", page) is None
    assert "no anchor #cm-eq-999" in broken_link("../theory/training.html#cm-eq-999", page)
    assert "no file" in broken_link("../theory/no-such-page.html", page)
    assert broken_link("https://example.org/#anything", page) is None  # not followed


def test_no_page_loads_from_the_network(site):
    remote = [
        f"{page.relative_to(site)}: {url}"
        for page in reachable_pages(site)
        for url in _read(page).loads
        if _is_remote(url)
    ]
    assert not remote, "pages that load from the network:\n" + "\n".join(remote[:40])


# --- In the browser, offline --------------------------------------------------------------


@pytest.fixture
def offline(browser):
    """A page in a fresh browser context where every request other than ``file://`` is
    aborted; ``remote`` lists the addresses that were attempted, ``errors`` what the
    browser logged as an error (console and uncaught exceptions)."""
    context = browser.new_context(viewport=VIEWPORT)
    tab = SimpleNamespace(page=None, remote=[], errors=[])

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            tab.remote.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on(
        "request",
        lambda q: tab.remote.append(q.url) if not q.url.startswith(("file:", "data:")) else None,
    )
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: tab.errors.append(f"uncaught: {e}"))
    tab.page = page
    try:
        yield tab
    finally:
        context.close()


MATH_REPORT = r"""(rawTex) => {
    const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
    const raw = [];
    const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walk.nextNode(); n; n = walk.nextNode()) {
        const el = n.parentElement;
        if (!el || el.closest(skip) || !el.checkVisibility()) continue;
        if (rawTex.some(t => n.data.includes(t))) raw.push(n.data.trim().slice(0, 160));
    }
    const math = [...document.querySelectorAll('.math')];
    return {
        math: math.length,
        unrendered: math.filter(m => !m.querySelector('mjx-container'))
                        .map(m => m.textContent.trim().slice(0, 160)),
        texErrors: [...document.querySelectorAll('mjx-merror')]
                        .map(e => e.getAttribute('data-mjx-error') || e.textContent),
        raw,
        fontErrors: [...document.fonts].filter(f => f.status === 'error').map(f => f.family),
    };
}"""
IMAGES = """async () => {
    const imgs = [...document.querySelectorAll('img')];
    imgs.forEach(i => { i.loading = 'eager'; });
    const done = await Promise.allSettled(imgs.map(i => i.decode()));
    return {count: imgs.length,
            broken: imgs.filter((i, k) => done[k].status === 'rejected' || !i.naturalWidth)
                        .map(i => i.src.slice(0, 120))};
}"""
ICONS = """() => [...document.querySelectorAll('.anim-buttons i.fa')]
    .filter(i => ['none', 'normal', ''].includes(getComputedStyle(i, '::before').content))
    .map(i => i.className)"""
LINKS = "sel => [...document.querySelectorAll(sel)].map(a => a.href)"
LANDED = """() => {
    const el = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!el) return null;
    const eq = el.querySelector('mjx-container')
        || (el.nextElementSibling && el.nextElementSibling.querySelector('mjx-container'));
    const box = el.getBoundingClientRect();
    return {typeset: !!eq, inView: box.top < window.innerHeight && box.bottom > 0};
}"""


def typeset(tab, where: str) -> None:
    """Wait until MathJax has typeset the page (on pages with maths). Its script is deferred,
    so by the load event it has run: without ``MathJax.startup`` then, it did not load."""
    if tab.page.evaluate("() => !!document.querySelector('.math')"):
        loaded = tab.page.evaluate("() => !!(window.MathJax && MathJax.startup)")
        assert loaded, f"{where}: MathJax did not load (requests off the disk: {tab.remote})"
        tab.page.evaluate("() => MathJax.startup.promise")
    tab.page.evaluate("() => document.fonts.ready.then(() => null)")


def open_page(tab, site: Path, name: str) -> Path:
    """Open ``name``.html and wait until it is typeset."""
    path = site / f"{name}.html"
    tab.page.goto(path.as_uri(), wait_until="load")
    typeset(tab, f"{name}.html")
    return path


def screenshot(tab, artifacts: Path, name: str) -> None:
    """The window with the first display equation (else the top of the page) in view."""
    tab.page.evaluate(
        "() => { const m = document.querySelector('div.math');"
        " if (m) m.scrollIntoView({block: 'center'}); }"
    )
    tab.page.screenshot(path=artifacts / f"docs-{name.replace('/', '-')}.png")


@pytest.mark.parametrize("name", PAGES)
def test_page_reads_offline(name, site, offline, artifacts):
    path = open_page(offline, site, name)
    page = offline.page
    screenshot(offline, artifacts, name)
    where = f"{name}.html (picture: {artifacts})"

    maths = page.evaluate(MATH_REPORT, RAW_TEX)
    if name.startswith("theory/"):
        assert maths["math"] > 0, f"{where}: a theory page without maths"
    assert not maths["unrendered"], f"{where}: maths left as TeX: {maths['unrendered'][:5]}"
    assert not maths["texErrors"], f"{where}: TeX errors: {maths['texErrors'][:5]}"
    assert not maths["raw"], f"{where}: raw TeX in the visible text: {maths['raw'][:5]}"
    assert not maths["fontErrors"], f"{where}: fonts that failed: {maths['fontErrors']}"

    images = page.evaluate(IMAGES)
    assert not images["broken"], f"{where}: images that do not load: {images['broken']}"
    if name.startswith("notebooks/"):
        assert images["count"] > 0, f"{where}: a notebook page without a figure"
    assert not page.evaluate(ICONS), f"{where}: player buttons without icons"

    navigation = page.evaluate(LINKS, NAVIGATION)
    assert len(navigation) > 5, f"{where}: only {len(navigation)} navigation links"
    links = page.evaluate(LINKS, "a[href]")
    broken = [why for url in links if (why := broken_link(url, path))]
    assert not broken, f"{where}: links that miss:\n" + "\n".join(broken[:20])

    if name.startswith("api/"):
        cited = page.evaluate(LINKS, EQ_LINKS)
        assert len(cited) > 3, f"{where}: only {len(cited)} 'Eq. (n)' links"
        page.locator(EQ_LINKS).first.click()
        page.wait_for_load_state("load")
        typeset(offline, page.url)
        landed = page.evaluate(LANDED)
        assert landed, f"{where}: {page.url} lands on no element"
        assert landed["typeset"], f"{where}: {page.url} lands on no typeset equation"
        assert landed["inView"], f"{where}: {page.url} leaves its equation out of view"

    assert not offline.remote, f"{where}: requests off the disk: {offline.remote}"
    assert not offline.errors, f"{where}: the browser logged errors: {offline.errors[:5]}"


def test_search_finds_pseudo_huber(site, offline, artifacts):
    """Sphinx's search also fetches each result page for a summary; a browser refuses that
    from file://, so offline the results come without summaries (not counted as errors)."""
    page = offline.page
    page.goto((site / "search.html").as_uri() + "?q=pseudo-Huber", wait_until="load")
    page.wait_for_function(
        "() => /Search finished|did not match/.test(document.body.innerText)", timeout=30_000
    )
    page.screenshot(path=artifacts / "docs-search.png")
    found = page.evaluate(LINKS, "#search-results li a[href]")
    assert found, f"search.html?q=pseudo-Huber found nothing (picture: {artifacts})"
    about = [u for u in found if PSEUDO_HUBER.search(Path(urlsplit(u).path).read_text())]
    assert about, f"no result of search.html?q=pseudo-Huber is about it: {found}"
    broken = [why for url in found if (why := broken_link(url, site / "search.html"))]
    assert not broken, "search results that miss:\n" + "\n".join(broken)
    assert not offline.remote, f"search.html: requests off the disk: {offline.remote}"
