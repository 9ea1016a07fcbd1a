"""environment.yml (conda) and pyproject.toml (pip) list the same dependencies."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def _pip_section_of_environment_yml() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    deps = {}
    for line in lines[start + 1 :]:
        item = line.strip()
        if not item.startswith("- "):
            break
        spec = item[2:].strip()
        if not spec.startswith("-e"):
            deps[_name(spec)] = spec
    return deps


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["test"]
    pyproject = {_name(r): r.replace(" ", "") for r in wanted}
    conda = {k: v.replace(" ", "") for k, v in _pip_section_of_environment_yml().items()}
    assert conda == pyproject
