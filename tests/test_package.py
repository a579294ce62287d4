"""The package as users get it: one version, the licence files, a README of today's facts whose figures the
benchmarks page holds with their commands. (The wheel itself is built, installed and run by make wheel-check.)"""

import ast
import re
from pathlib import Path

import pytest

import s2sr

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_lives_in_one_plain_literal_that_setuptools_reads():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "s2sr.__version__"}
    tree = ast.parse((ROOT / "src" / "s2sr" / "__init__.py").read_text())
    [value] = [n.value for n in tree.body if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["__version__"]]
    assert isinstance(value, ast.Constant) and value.value == s2sr.__version__  # read without importing TensorFlow


def test_the_licence_files_and_the_weights_are_packaged():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    assert all((ROOT / f).is_file() for f in pyproject["project"]["license-files"])
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert pyproject["tool"]["setuptools"]["package-data"]["s2sr"] == ["weights/*.json", "weights/*.npz"]
    assert {p.name for p in (ROOT / "src" / "s2sr" / "weights").iterdir()} >= {
        "dsen2_x2.json", "dsen2_x2.npz", "dsen2_x6.json", "dsen2_x6.npz"}


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_readme_is_short_and_of_today():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for wording in ("this release", "last release", "releases ago", "before this release", "new in this release"):
        assert wording not in readme.lower(), wording


def test_every_figure_of_the_readmes_quality_and_speed_is_in_the_benchmarks_page():
    readme, benchmarks = (ROOT / "README.md").read_text(), (ROOT / "docs" / "benchmarks.md").read_text()
    figures = set()
    for heading in ("Quality", "Speed"):
        figures |= set(re.findall(r"\d+\.\d+(?: / \d+\.\d+)?(?: (?:min|s|GiB)\b)?", _section(readme, heading)))
    assert len(figures) > 20
    assert sorted(f for f in figures if f not in benchmarks) == []
