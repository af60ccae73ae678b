"""The package's metadata and what a wheel carries, read from setup.py's keywords without
building anything (a wheel user sees only METADATA and the files the wheel installs)."""

import pathlib
import re
import runpy
import sys
import types

import pytest
import trove_classifiers

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def setup_keywords():
    """The keywords setup.py passes to setuptools.setup, with a stand-in setuptools.

    The stand-in reads what setup.py declares whatever setuptools this environment has (the build
    uses its own, setuptools>=77 from pyproject.toml) and builds nothing.
    """
    keywords = {}
    stand_in = types.ModuleType("setuptools")
    stand_in.setup = keywords.update
    stand_in.find_packages = lambda **kwargs: []
    real = sys.modules.get("setuptools")
    sys.modules["setuptools"] = stand_in
    try:
        runpy.run_path(str(ROOT / "setup.py"))
    finally:
        if real is None:
            del sys.modules["setuptools"]
        else:
            sys.modules["setuptools"] = real
    return keywords


def test_setup_metadata_names_license_url_and_author(setup_keywords):
    assert setup_keywords.get("license_expression") == "Apache-2.0"
    assert setup_keywords.get("license_files") == ["LICENSE"]
    # PEP 639: a license expression replaces the License field and the license classifiers.
    assert "license" not in setup_keywords
    assert not [c for c in setup_keywords["classifiers"] if c.startswith("License ::")]
    assert setup_keywords.get("url", "").startswith("https://")
    assert all(url.startswith("https://") for url in setup_keywords["project_urls"].values())
    assert setup_keywords.get("author")
    assert setup_keywords["python_requires"] == ">=3.10"


def test_license_file_is_apache_2_with_the_projects_copyright():
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("Copyright 2026 The keras-mtsa Authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text


def test_wheel_carries_every_docs_examples_and_benchmarks_path_the_readme_names(setup_keywords):
    # The README names these paths as text (relative links break on PyPI and in a wheel); its
    # install section sends a wheel user to share/doc/keras-mtsa/, where data_files installs them.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:docs|examples|benchmarks)/[\w./-]*)`", readme))
    assert named, "the README names no docs/, examples/ or benchmarks/ path"
    installed = {
        f"{directory}/{pathlib.Path(source).name}"
        for directory, sources in setup_keywords.get("data_files", [])
        for source in sources
    }
    for path in named:
        wanted = f"share/doc/keras-mtsa/{path}"
        if path.endswith("/"):
            assert any(file.startswith(wanted) for file in installed), path
        else:
            assert wanted in installed, path


def test_setup_classifiers_are_ones_pypi_accepts(setup_keywords):
    # PyPI refuses an upload with a classifier outside this list ("Framework :: Keras" is not one).
    unknown = [c for c in setup_keywords["classifiers"] if c not in trove_classifiers.classifiers]
    assert unknown == []
