"""Sphinx configuration of the cmedu documentation site.

Build: ``make docs`` (``python -m sphinx -W --keep-going -b html docs docs/_build/html``).
Markdown pages and the course notebooks go through myst-nb; the notebooks are rendered from
their stored outputs and never executed. The API reference is autodoc + napoleon (NumPy
docstrings); ``link_citations`` below turns "Eq. (7)", "Algorithm 2", "Theorem 1",
"Lemma 1" and "App. C" in the docstrings into links to the labelled equations of the
theory pages.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

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

# --- MyST and notebooks ---------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True
nb_execution_mode = "off"  # render the stored outputs; `make notebooks` produces them
nb_merge_streams = True
# ipywidgets state is stored only when a notebook ran live; the static figures that the
# headless explorers draw carry the content, so a missing widget view is not an error.
suppress_warnings = ["mystnb.unknown_mime_type"]

# The course notebooks live in notebooks/ at the top of the repository. Sphinx reads only
# files under docs/, and resolves symlinks (which breaks the notebooks' links to each
# other), so every build mirrors notebooks/*.ipynb into docs/notebooks/ (git-ignored);
# the toctree glob of course.md picks up new notebooks by itself.
NOTEBOOKS, MIRROR = ROOT / "notebooks", DOCS / "notebooks"


def mirror_notebooks() -> None:
    MIRROR.mkdir(exist_ok=True)
    wanted = {p.name: p for p in NOTEBOOKS.glob("*.ipynb")}
    for stale in MIRROR.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, src in wanted.items():
        dst = MIRROR / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copy2(src, dst)  # keeps the mtime: unchanged notebooks are not re-read


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


def setup(app):
    app.connect("source-read", drop_missing_pages)
    app.connect("autodoc-process-docstring", link_citations)
    app.connect("source-read", include_results)
    return {"parallel_read_safe": True}
