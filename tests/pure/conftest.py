"""Pure suites: generation/ modules loaded straight from the source tree, no Blender, no zip.

These run in seconds under each Blender environment's Python (numpy 1 and 2) with `make test-fast`. The
fixtures below shadow the root conftest's, which reach the same modules through the installed extension.
"""

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "generation"


def source_module(name: str):
    """`generation.<name>` from this checkout, imported as a plain package (it imports no bpy)."""
    if PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, ROOT / PACKAGE / "__init__.py", submodule_search_locations=[str(ROOT / PACKAGE)]
        )
        sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[PACKAGE])
    return importlib.import_module(f"{PACKAGE}.{name}")


def _fixture(name: str):
    @pytest.fixture(scope="session")
    def module():
        return source_module(name)

    return module


errors = _fixture("errors")
hdr = _fixture("imaging.hdr")
outputs = _fixture("imaging.outputs")
pbr = _fixture("imaging.pbr")
quality = _fixture("imaging.quality")
request_module = _fixture("engine.request")
models = _fixture("engine.models")
options = _fixture("options")
projection = _fixture("imaging.projection")
views = _fixture("imaging.views")
region_edit = _fixture("imaging.region_edit")
photo_world = _fixture("imaging.photo_world")
poles = _fixture("imaging.poles")
depth = _fixture("imaging.depth")
memory_plan = _fixture("engine.memory_plan")
