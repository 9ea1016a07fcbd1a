"""Sphinx configuration of the cmedu documentation site.

Build: ``make docs`` (``python -m sphinx -W --keep-going -b html docs docs/_build/html``).
Markdown pages and the course notebooks go through myst-nb; the notebooks are rendered from
their stored outputs and never executed. The API reference is autodoc + napoleon (NumPy
docstrings); ``link_citations`` below turns "Eq. (7)", "Algorithm 2", "Theorem 1",
"Lemma 1" and "App. C" in the docstrings into links to the labelled equations of the
theory pages.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

from docutils import nodes

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # import cmedu from this checkout, installed or not

project = "cmedu"
author = "cmedu contributors"
copyright = "cmedu contributors, MIT licence"

extensions = [
    "myst_nb",  # Markdown (MyST) and .ipynb sources
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db"]
root_doc = "index"

# --- Maths, rendered with no network --------------------------------------------------------
# A course is often read in rooms with a poor network, so the site carries its own MathJax
# instead of loading it from a CDN (sphinx.ext.mathjax's default). MathJax 3's browser
# components come from the PyPI package django-static-mathjax (in the docs/test extras; a
# plain copy of MathJax that needs no Django) and are copied into _static/mathjax/ of every
# HTML build, so the built folder works anywhere, from file:// too. mathjax_path is relative
# to _static/.
_spec = importlib.util.find_spec("mathjax")
MATHJAX = Path(_spec.submodule_search_locations[0]) / "static" / "mathjax" if _spec else None
if MATHJAX is None or not (MATHJAX / "es5" / "tex-mml-chtml.js").is_file():
    raise RuntimeError(
        "MathJax is missing: the docs serve it from the package django-static-mathjax, "
        "installed by `pip install -e '.[docs]'` (or '.[test]'; `make setup` does this)."
    )
# The component the pages load and what it fetches on demand: TeX extensions, the CHTML
# fonts, the accessibility and menu modules, the speech rules (the other bundles are unused).
MATHJAX_PARTS = ["tex-mml-chtml.js", "input", "output/chtml", "a11y", "ui", "sre"]
mathjax_path = "mathjax/tex-mml-chtml.js"
# MathJax 3 reads `window.MathJax = mathjax3_config`; myst-parser fills in
# options.processHtmlClass (MathJax typesets only the elements that hold MyST's maths).
mathjax3_config: dict = {"options": {}}


def copy_mathjax(app, exception) -> None:
    """build-finished: MathJax's files into _static/mathjax/ of an HTML build."""
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src = MATHJAX / "es5" / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    shutil.copy2(MATHJAX / "LICENSE", dest / "LICENSE")


# sphinx.ext.mathjax wraps a display equation that holds a line break "\\" in a split
# environment. When every "\\" belongs to an environment inside the equation (cases,
# matrix, aligned) the wrapper is needless, and with a \tag it breaks the equation:
# MathJax shows "\tag not allowed in split environment" instead. Such an equation goes to
# MathJax as written, between mathjax_display's delimiters.
ENVIRONMENT = re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL)


def unsplit_display_math(app, doctree, docname: str) -> None:
    """doctree-resolved: no split around an equation whose line breaks sit in environments."""
    if app.builder.format != "html":
        return
    for node in doctree.findall(nodes.math_block):
        tex = node.astext()
        if node.get("nowrap") or node.get("number") or "amsmath" in node["classes"]:
            continue
        if "\\\\" in tex and "\\\\" not in ENVIRONMENT.sub("", tex) and "\n\n" not in tex.strip():
            start, end = app.config.mathjax_display
            node["nowrap"] = True
            node.clear()
            node += nodes.Text(f"{start}{tex}{end}")


# --- MyST and notebooks ---------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
nb_execution_mode = "off"  # render the stored outputs; `make notebooks` produces them
nb_merge_streams = True
# ipywidgets state is stored only when a notebook ran live; the static figures that the
# headless explorers draw carry the content, so a missing widget view is not an error.
suppress_warnings = ["mystnb.unknown_mime_type"]
# No notebook stores a widget view (only the state of a live run), so the widget manager that
# myst-nb would load from a CDN for them has nothing to draw: it is not loaded.
nb_ipywidgets_js: dict = {}

# The course notebooks live in notebooks/ at the top of the repository. Sphinx reads only
# files under docs/, and resolves symlinks (which breaks the notebooks' links to each
# other), so every build mirrors notebooks/*.ipynb into docs/notebooks/ (git-ignored);
# the toctree glob of course.md picks up new notebooks by itself. A notebook links a docs page
# as it lies in the repository, "../docs/theory/pf-ode.md" (right in JupyterLab); the mirror
# sits in docs/, where the same page is "../theory/pf-ode.md", so the links are rewritten.
NOTEBOOKS, MIRROR = ROOT / "notebooks", DOCS / "notebooks"


def mirror_notebooks() -> None:
    MIRROR.mkdir(exist_ok=True)
    wanted = {p.name: p for p in NOTEBOOKS.glob("*.ipynb")}
    for stale in MIRROR.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, src in wanted.items():
        dst = MIRROR / name
        text = src.read_bytes().replace(b"](../docs/", b"](../")
        if not dst.exists() or dst.read_bytes() != text:
            dst.write_bytes(text)
            shutil.copystat(src, dst)  # keeps the mtime: unchanged notebooks are not re-read


mirror_notebooks()

# --- API reference ----------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# --- HTML -------------------------------------------------------------------------------
html_theme = "furo"
html_title = "cmedu: Consistency Models from the mathematics up"
html_static_path: list[str] = []


# --- Links from the docstrings to the theory pages ---------------------------------------
# Labels on the theory pages: (cm-eq-7)=, (cm-alg-2)=, (cm-thm-1)=, (cm-lemma-1)=,
# (cm-table-3)=, (cm-app-c)=, and Karras et al.'s (edm-eq-5)=, (edm-alg-1)=, ...
# A citation is linked when its label exists. It belongs to the paper named nearest before
# it on its line (or right after it: "Eq. (5) of Karras et al."): EDM's for "EDM"/"Karras",
# none for another paper ("Heusel et al. 2017, Eq. (6)"), else, by default, CM's.
LABEL = re.compile(r"^\(([a-z0-9-]+)\)=\s*$", re.MULTILINE)
LABELS = {m for p in DOCS.rglob("*.md") if "_build" not in p.parts
          for m in LABEL.findall(p.read_text(encoding="utf-8"))}  # fmt: skip
KINDS = {"Eq": "eq", "Algorithm": "alg", "Alg": "alg", "Theorem": "thm", "Lemma": "lemma",
         "Table": "table"}  # fmt: skip
CITE = re.compile(
    r"\b(?P<eq>Eqs?\.\s*)(?P<eqnums>\(\d+\)(?:\s*(?:/|,|and|-|to)\s*\(\d+\))*)"
    r"|\b(?P<kind>Algorithms?|Alg\.|Theorem|Lemma|Table)(?P<sep>\s*)"
    r"(?P<nums>\d+(?:\s*(?:and|/)\s*\d+)*)\b"
    r"|\bApp\.\s*(?P<app>[A-Z])\b"
)
NUM = re.compile(r"\(?(\d+)\)?")
PAPER = (
    r"EDM|Karras|\bCM\b|iCT|Song et al|Song,? (?:&|and) Dhariwal|Song, Dhariwal"
    r"|[A-Z][\w'-]+ (?:et al\.|& [A-Z][\w'-]+)"
)
MARKERS = re.compile(PAPER)
AFTER = re.compile(rf"^[\s,]*(?:of\s+(?:the\s+)?|\(|in\s+)({PAPER})")
TABLE_BORDER = re.compile(r"^\s*(?:=+(?:\s+=+)+|\+[-=+]+\+)\s*$")
LONE_STAR = re.compile(r"(?<=[\s(\[])\*(?=\w+[),\]])")  # the *D of "shape (B, *D)"


def _paper(text: str, start: int, end: int) -> str | None:
    """'edm', 'cm' or None (another paper) for the citation at text[start:end]."""
    after = AFTER.match(text[end : end + 40])
    named = after.group(1) if after else (MARKERS.findall(text[:start]) or ["CM"])[-1]
    if named in ("EDM", "Karras"):
        return "edm"
    return "cm" if re.match(r"CM|iCT|Song", named) else None


def _ref(text: str, label: str) -> str:
    return f":ref:`{text} <{label}>`" if label in LABELS else text


def _link_line(line: str) -> str:
    def replace(m: re.Match) -> str:
        paper = _paper(m.string, m.start(), m.end())
        if paper is None:
            return m.group(0)
        if m.group("app"):
            return _ref(m.group(0), f"{paper}-app-{m.group('app').lower()}")
        if m.group("eq"):
            kind, head, nums = "eq", m.group("eq"), m.group("eqnums")
        else:
            kind = KINDS[m.group("kind").rstrip(".").removesuffix("s")]
            head, nums = m.group("kind") + m.group("sep"), m.group("nums")
        out, pos = [], 0
        for k, n in enumerate(NUM.finditer(nums)):
            text = head + n.group(0) if k == 0 else n.group(0)
            out += [nums[pos : n.start()], _ref(text, f"{paper}-{kind}-{n.group(1)}")]
            pos = n.end()
        return "".join(out) + nums[pos:]

    # Leave ``literals`` and existing roles alone.
    spans = [m.span() for m in re.finditer(r"``.*?``|:[\w:]+:`[^`]*`", line)]

    def outside(fn):
        return lambda m: m.group(0) if any(a <= m.start() < b for a, b in spans) else fn(m)

    line = LONE_STAR.sub(outside(lambda m: "\\*"), line)
    spans = [m.span() for m in re.finditer(r"``.*?``|:[\w:]+:`[^`]*`", line)]
    return CITE.sub(outside(replace), line)


def _blocks(lines: list[str]) -> list[list[int]]:
    """Indices of the lines of each paragraph (lines between blank lines)."""
    blocks, block = [], []
    for i, line in enumerate(lines):
        if line.strip():
            block.append(i)
        elif block:
            blocks, block = [*blocks, block], []
    return blocks + ([block] if block else [])


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip())


NOT_PROSE = re.compile(r"^\s*(?:\.\. |:\w|[-*+] |\d+\. |>>>)")


def verbatim_formulas(lines: list[str]) -> None:
    """Make every indented block that follows a plain paragraph a literal block.

    Docstrings here set ASCII formulas and pseudo-code off by indentation. As rST block
    quotes they would lose their layout (and ``*``, ``_``, ``|`` would be read as markup);
    as literal blocks they read exactly as in ``help()``. The preceding paragraph's final
    ":" becomes "::" (shown as ":"), or " ::" is appended (not shown).
    """
    blocks = _blocks(lines)
    for prev, block in zip(blocks, blocks[1:]):
        last = lines[prev[-1]].rstrip()
        if _depth(lines[block[0]]) <= _depth(lines[prev[0]]) or last.endswith("::"):
            continue
        if NOT_PROSE.match(lines[prev[0]]) or any(TABLE_BORDER.match(lines[i]) for i in prev):
            continue
        lines[prev[-1]] = last + (":" if last.endswith(":") else " ::")


def link_citations(app, what, name, obj, options, lines: list[str]) -> None:
    """autodoc-process-docstring: formulas verbatim, then link the citations and escape the
    lone ``*`` of shapes, outside literal blocks and tables."""
    verbatim_formulas(lines)
    blocks = _blocks(lines)
    literal, indent = False, 0
    for block in blocks:
        depth = _depth(lines[block[0]])
        if literal and depth <= indent:
            literal = False
        if not literal and not any(TABLE_BORDER.match(lines[i]) for i in block):
            for i in block:
                lines[i] = _link_line(lines[i])
        if lines[block[-1]].rstrip().endswith("::"):
            literal, indent = True, depth


# --- Benchmark results: every benchmarks/results/**/*.md, found at build time -------------
RESULTS = ROOT / "benchmarks" / "results"
RESULTS_MARKER = "<!-- benchmark-results -->"


def include_results(app, docname: str, source: list[str]) -> None:
    if RESULTS_MARKER not in source[0]:
        return
    blocks = []
    for path in sorted(RESULTS.rglob("*.md")):
        rel = Path("..", path.relative_to(ROOT)).as_posix()  # from docs/benchmarks.md
        title = path.relative_to(RESULTS).as_posix()
        blocks.append(f"### `{title}`\n\n```{{include}} {rel}\n```\n")
    source[0] = source[0].replace(RESULTS_MARKER, "\n".join(blocks) or "(no results yet)")


# --- Pages written elsewhere: lines that name them appear only once they exist -----------
EDITING_NOTES = (
    "See {doc}`../editing` for the implementation notes: where the pseudo-code is ambiguous "
    "and which reading cmedu implements.\n"
)
OPTIONAL_LINES = {  # docname: [(line, the page it needs)]
    "index": [("Zero-shot editing <editing>\n", "editing")],
    "theory/editing": [(EDITING_NOTES, "editing")],
}


def drop_missing_pages(app, docname: str, source: list[str]) -> None:
    for line, page in OPTIONAL_LINES.get(docname, []):
        app.env.note_dependency(str(DOCS / f"{page}.md"))  # re-read when the page appears
        if not any((DOCS / f"{page}{suffix}").exists() for suffix in (".md", ".ipynb")):
            source[0] = source[0].replace(line, "")


# --- Animations: the player's icons without Font Awesome's CDN -----------------------------
# matplotlib's HTML animations (Animation.to_jshtml) link Font Awesome 4.4 from a CDN for
# the icons of their buttons. In the built pages that link is replaced by the few icons the
# player uses, drawn with Unicode characters, so the player reads the same with no network.
FONT_AWESOME = re.compile(r'<link[^>]*href="https?://[^"]*font-awesome[^"]*"[^>]*>')
PLAYER_ICONS = (
    "<style>.anim-buttons .fa{display:inline-block;font-style:normal}"
    ".fa-flip-horizontal{transform:scaleX(-1)}"
    + "".join(
        f'.fa-{name}::before{{content:"{glyph}"}}'
        for name, glyph in [
            ("fast-backward", "|\\25C0\\25C0"),
            ("step-backward", "|\\25C0"),
            ("play", "\\25B6"),
            ("pause", "\\275A\\275A"),
            ("step-forward", "\\25B6|"),
            ("fast-forward", "\\25B6\\25B6|"),
            ("minus", "\\2212"),
            ("plus", "+"),
        ]
    )
    + "</style>"
)


def local_player_icons(app, doctree, docname: str) -> None:
    """doctree-resolved: Font Awesome's CDN link in raw HTML outputs -> PLAYER_ICONS."""
    for node in doctree.findall(nodes.raw):
        html = node.astext()
        if "html" in node.get("format", "").split() and FONT_AWESOME.search(html):
            node.clear()
            node += nodes.Text(FONT_AWESOME.sub(lambda _: PLAYER_ICONS, html))


def setup(app):
    app.connect("build-finished", copy_mathjax)
    app.connect("doctree-resolved", local_player_icons)
    app.connect("doctree-resolved", unsplit_display_math)
    app.connect("source-read", drop_missing_pages)
    app.connect("autodoc-process-docstring", link_citations)
    app.connect("source-read", include_results)
    return {"parallel_read_safe": True}
