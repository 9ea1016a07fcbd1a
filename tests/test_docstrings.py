"""Every public function and class of the maths modules cites what it implements.

A learner reads a module beside the paper, so each public name must say where in the
literature it comes from: an equation, algorithm, theorem, lemma, section, appendix or
table number, or a named paper ("Karras et al. 2022", "Song & Dhariwal 2024"). The docs
site turns the numbered citations into links to the theory pages (docs/conf.py).

Public methods are checked too, as ``help()`` and the API reference show them (inherited
docstrings count). ``NOT_MATHS`` exempts names that implement no formula (I/O,
bookkeeping); a helper that cites nothing is better made private, or made to cite the
section it supports.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re

import pytest

MODULES = [
    "pfode",
    "sde",
    "solvers",
    "parameterization",
    "score_estimation",
    "losses",
    "schedules",
    "sampling",
    "distances",
    "ema",
    "metrics",
    "toys",
    "data_scale",
    "editing",
    "interpolants",
    "trigflow",
    "meanflow",
    "evaluation.fid",
]
PRESENT = [m for m in MODULES if importlib.util.find_spec(f"cmedu.{m}") is not None]

_NAME = r"[A-Z][\w'-]+"
CITATION = re.compile(
    r"Eqs?\.\s*\(\d+"  # Eq. (7), Eqs. (2)
    r"|\b(?:Algorithms?|Alg\.|Theorems?|Lemmas?|Definition|Tables?)\s*\d+"  # Algorithm 2
    r"|\bSec(?:tion|\.)\s*\d|§\s*\d"  # Sec. 4, §4
    r"|\bApp(?:endix|\.)\s*[A-Z]"  # App. C
    rf"|{_NAME} (?:et al\.|(?:&|and) {_NAME}),? \d{{4}}"  # Karras et al. 2022, Song & Dhariwal 2024
)

# Public methods that implement no formula (I/O, bookkeeping); the rest must cite.
NOT_MATHS = {
    "toys.GaussianMixture.from_json",
    "toys.GaussianMixture.to_json",
    "toys.GaussianMixture.dim",
    "losses.Objective.N",
    "losses.DenoisingScoreMatching.N",
    "evaluation.fid.check_report_path",
    # Input checks and shape bookkeeping (cmedu.checks and its callers).
    "pfode.broadcast_time",
    "pfode.check_times",
    "parameterization.infer_data_shape",
    "losses.check_loss_inputs",
    "data_scale.DataScaled.data_shape",
}


def cites(doc: str | None) -> bool:
    return bool(doc) and CITATION.search(doc) is not None


def public_names(module_name: str):
    """(qualified name, object) for the module's own public functions, classes, methods."""
    module = importlib.import_module(f"cmedu.{module_name}")
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            yield f"{module_name}.{name}", obj
        elif inspect.isclass(obj):
            yield f"{module_name}.{name}", obj
            for attr, member in vars(obj).items():
                if (attr.startswith("_") and attr != "__call__") or attr == "forward":
                    continue  # forward: the class docstring states what the module computes
                if inspect.isfunction(member) or isinstance(member, property | classmethod):
                    yield f"{module_name}.{name}.{attr}", getattr(obj, attr)


def test_citation_pattern_examples():
    for text in ("see Eq. (7)", "Algorithm 2", "(App. C)", "Lemma 1", "Sec. 4", "§4",
                 "Karras et al. 2022", "Song & Dhariwal 2024", "Székely & Rizzo 2013",
                 "EDM Table 1", "Theorem 2"):  # fmt: skip
        assert cites(text), text
    for text in ("an EMA of the weights", "Eq. 7 without brackets", "in 2023", "iCT"):
        assert not cites(text), text


@pytest.mark.parametrize("module_name", PRESENT)
def test_every_public_name_cites_its_source(module_name):
    missing = [
        qualname
        for qualname, obj in public_names(module_name)
        if qualname not in NOT_MATHS and not cites(inspect.getdoc(obj))
    ]
    assert not missing, (
        "these public names cite no equation, algorithm, theorem, lemma, section, appendix, "
        "table or named paper in their docstring:\n  " + "\n  ".join(missing)
    )
