"""A pytest plugin: collect the repository root as a plain folder, not as a Python package.

The repository root is the extension's root, so it holds an `__init__.py`; pytest would otherwise
import it as a package before any test runs, outside Blender's extension system. Tests import the
extension only the way Blender installs it (see tests/conftest.py).
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent):
    if path == ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
