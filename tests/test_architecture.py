"""The package's layout, as docs/architecture.md states it: no import cycle (at module
level or inside a function), no module importing another's private name, each layer
importing only from the layers below it, and short functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cmedu"

# Layers from the bottom up; a module may import from its own layer and those below.
# The top-level __init__ (the public API) and __main__ may import anything.
LAYERS = [
    ("runtime", {"cmedu.runtime"}),
    ("maths", {"cmedu.constants", "cmedu.checks", "cmedu.toys", "cmedu.data_scale",
               "cmedu.pfode", "cmedu.sde", "cmedu.solvers",
               "cmedu.parameterization", "cmedu.score_estimation", "cmedu.losses",
               "cmedu.schedules", "cmedu.distances", "cmedu.ema", "cmedu.sampling",
               "cmedu.editing", "cmedu.metrics", "cmedu.interpolants", "cmedu.trigflow",
               "cmedu.meanflow"}),
    ("networks and data", {"cmedu.networks", "cmedu.data"}),
    ("training", {"cmedu.training"}),
    ("evaluation", {"cmedu.evaluation"}),
    ("course", {"cmedu.course"}),
    ("command line", {"cmedu.cli"}),
]  # fmt: skip
API = {"cmedu", "cmedu.__main__"}

# Functions allowed a body of more than MAX_BODY lines, each with its reason.
MAX_BODY = 40
LONG_FUNCTIONS = {
    "cmedu.networks.unet.UNet.__init__": "a network's constructor lists its layers in order",
    "cmedu.course.demo.main": "the headless tour: train, sample, plot and tabulate, in order",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str) -> list[tuple[str, str, int]]:
    """(imported cmedu module, imported name or '', line) for every import in module
    ``name``, at module level and inside functions, relative imports resolved."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("cmedu")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if not base.startswith("cmedu"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                is_module = sub in MODULES
                found.append((sub, "", node.lineno) if is_module else (base, a.name, node.lineno))
    return found


def test_no_module_imports_a_private_name_of_another():
    private = [f"{m}:{line} imports {target}.{n}" for m in MODULES
               for target, n, line in imports(m) if n.startswith("_") and target != m]  # fmt: skip
    assert not private, private


def test_there_is_no_import_cycle():
    graph = {m: {t for t, _, _ in imports(m) if t in MODULES and t != m} for m in MODULES}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, cycles


def layer(name: str) -> int | None:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_every_module_belongs_to_a_layer():
    assert [m for m in MODULES if m not in API and layer(m) is None] == []


def test_each_layer_imports_only_from_itself_and_the_layers_below():
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
              for m in MODULES if m not in API
              for t, _, _ in imports(m) if t in MODULES and layer(t) > layer(m)]  # fmt: skip
    assert not upward, upward


def long_functions() -> dict[str, int]:
    """Qualified name -> body length in lines, for every function over MAX_BODY lines."""
    out = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())

        def walk(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    qual = f"{prefix}.{child.name}"
                    if not isinstance(child, ast.ClassDef):
                        body = child.body[1:] if ast.get_docstring(child) else child.body
                        if body and body[-1].end_lineno - body[0].lineno + 1 > MAX_BODY:
                            out[qual] = body[-1].end_lineno - body[0].lineno + 1
                    walk(child, qual)

        walk(tree, name)
    return out


def test_function_bodies_are_short_outside_the_allow_list():
    too_long = {q: n for q, n in long_functions().items() if q not in LONG_FUNCTIONS}
    assert not too_long, f"bodies over {MAX_BODY} lines (split them or allow-list): {too_long}"


@pytest.mark.parametrize("name", sorted(LONG_FUNCTIONS))
def test_the_allow_list_names_only_long_functions(name):
    assert name in long_functions(), f"{name} is {MAX_BODY} lines or shorter: drop it"
