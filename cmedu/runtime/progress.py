"""Progress bars: a widget bar in a live Jupyter frontend, a text bar everywhere else.

``tqdm.auto`` draws an ipywidgets bar in any kernel. When a notebook is executed headless to
store its outputs (``python scripts/notebooks.py``, which sets ``CMEDU_HEADLESS=1``), only the
bar's first state is saved, so a finished run would be shown at 0%. There the bar is plain
text, refreshed at most every ``HEADLESS_INTERVAL`` seconds, and its last line is what the
stored notebook shows.
"""

from __future__ import annotations

import os

HEADLESS_INTERVAL = 10.0  # seconds between refreshes of a stored text bar


def tqdm(*args, **kwargs):
    """``tqdm.auto.tqdm``, or a text ``tqdm`` when ``CMEDU_HEADLESS=1`` (see module doc)."""
    if os.environ.get("CMEDU_HEADLESS") == "1":
        from tqdm.std import tqdm as text_bar

        kwargs.setdefault("mininterval", HEADLESS_INTERVAL)
        return text_bar(*args, **kwargs)
    from tqdm.auto import tqdm as auto_bar

    return auto_bar(*args, **kwargs)
