"""The stored notebooks show a reader what a clean run shows: no traceback, no path of the
machine that ran them, no object address, no stream of progress-bar fragments and no
widget state that no output displays (``scripts/notebooks.py`` writes them that way)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
_spec = importlib.util.spec_from_file_location("notebooks_script", ROOT / "scripts/notebooks.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


def _texts(nb: dict):
    """(cell index, text) of every text an output carries: streams, plain text, HTML."""
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                yield i, "".join(out["text"])
            for kind in ("text/plain", "text/html", "text/markdown"):
                if kind in out.get("data", {}):
                    yield i, "".join(out["data"][kind])
            if out["output_type"] == "error":
                yield i, "Traceback: " + out.get("ename", "")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_hold_no_traceback_path_or_address(path):
    nb = json.loads(path.read_text())
    for i, text in _texts(nb):
        assert "Traceback" not in text, f"cell {i} stores a traceback"
        found = script.MACHINE_PATH.search(text)
        assert found is None, (
            f"cell {i} stores a path of the machine: {text[found.start() :][:80]!r}"
        )
        assert " at 0x" not in text, f"cell {i} stores an object address"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebooks_are_clean(path):
    """No carriage-return fragments in streams, no undisplayed widget state: cleaning a
    stored notebook changes nothing."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    assert script.clean(copy.deepcopy(nb)) == nb


def test_clean_keeps_what_a_reader_sees():
    import nbformat

    nb = nbformat.v4.new_notebook()
    bar = "cd:   0%|          | 0/9\rcd:  50%|#####     | 4/9\rcd: 100%|##########| 9/9\n"
    nb.cells = [nbformat.v4.new_code_cell("train()")]
    nb.cells[0].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=bar[:30]),  # a bar's fragments
        nbformat.v4.new_output("stream", name="stderr", text=bar[30:] + "done\n"),  # arrive
        nbformat.v4.new_output("stream", name="stdout", text="loss 0.1\n"),  # one by one
    ]
    nb.metadata["widgets"] = {script.WIDGET_STATE: {"state": {"abc": {}}, "version_major": 2}}
    cleaned = script.clean(nb)
    assert [out["text"] for out in cleaned.cells[0].outputs] == [
        "cd: 100%|##########| 9/9\ndone\n",
        "loss 0.1\n",
    ]
    assert "widgets" not in cleaned.metadata
    view = {script.WIDGET_VIEW: {"model_id": "abc"}}
    nb.cells[0].outputs.append(nbformat.v4.new_output("display_data", data=view))
    nb.metadata["widgets"] = {script.WIDGET_STATE: {"state": {"abc": {}, "old": {}}}}
    assert list(script.clean(nb).metadata["widgets"][script.WIDGET_STATE]["state"]) == ["abc"]
