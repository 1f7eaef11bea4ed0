"""The layout a newcomer reads: no import circles, a top level of surfaces, generation/ split by concern."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "bench", "tools", "server", "docs", "dist", "build"}


def shipped_modules() -> dict[str, Path]:
    """Every module of the extension by dotted name ("" is the package itself)."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] in NOT_SHIPPED or parts[0].startswith("."):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports, at its top or inside its functions: a circle through a lazy
    import is still two modules that cannot be understood one without the other."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for statement in ast.walk(ast.parse(path.read_text())):
        if not isinstance(statement, ast.ImportFrom) or not statement.level:
            continue
        base = package.split(".") if package else []
        base = base[: len(base) - (statement.level - 1)]
        target = ".".join([*base, *([statement.module] if statement.module else [])])
        for alias in statement.names:
            submodule = f"{target}.{alias.name}".lstrip(".")
            found.add(submodule if submodule in modules else target)
    # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless they are the importer's own packages,
    # which are being imported already (a package's __init__ importing its modules is no circle).
    own = set(_with_parents(name))
    return {parent for module in found for parent in _with_parents(module)} - own


def _with_parents(module: str):
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle as a list of modules, or [] when there is none (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if state.get(other) == "open":
                return [*stack[stack.index(other) :], other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_extension_imports_in_no_circle():
    modules = shipped_modules()
    graph = {name: imports_of(name, path, modules) for name, path in modules.items() if name}
    assert graph["preferences"] and graph["operators"], "the walker found no imports: it is broken"
    assert find_cycle(graph) == []


def test_the_walker_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_the_top_level_holds_registration_surfaces_and_packages():
    loose = sorted(path.stem for path in ROOT.glob("*.py"))
    assert loose == ["__init__", "api", "cli", "preferences", "properties"]
    packages = sorted(path.parent.name for path in ROOT.glob("*/__init__.py"))
    assert packages == ["flow", "generation", "operators", "panels", "scene", "server"]


def test_the_server_never_imports_blender():
    for path in (ROOT / "server").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name for name in names if name.split(".")[0] == "bpy"}, path.name


def test_generation_is_split_by_concern():
    generation = ROOT / "generation"
    assert sorted(path.parent.name for path in generation.glob("*/__init__.py")) == [
        "engine",
        "imaging",
        "setup",
    ]
    assert sorted(path.stem for path in generation.glob("*.py")) == ["__init__", "errors", "options"]


# Run in a fresh Python: each imaging module imported, and a world and a material written, with torch,
# diffusers, transformers, bpy and the optional OpenEXR package made unimportable by a meta path finder.
# A lazy import inside a function (`from torch import ...` included) fails here where a text search passes.
WITHOUT_TORCH = """
import importlib, importlib.abc, importlib.util, sys, tempfile
import numpy as np

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "diffusers", "transformers", "bpy", "OpenEXR"}:
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, Blocked())
root = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "generation", root + "/generation/__init__.py", submodule_search_locations=[root + "/generation"]
)
sys.modules["generation"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["generation"])
for name in sys.argv[2:]:
    importlib.import_module("generation.imaging." + name)
outputs = sys.modules["generation.imaging.outputs"]
sky = np.clip(np.linspace(1.0, 0.1, 64)[:, None, None] * np.ones((64, 128, 3)), 0, 1).astype(np.float32)
sky[10:13, 40:43] = 1.0
with tempfile.TemporaryDirectory() as folder:
    world = outputs.write_world(sky, folder, "w", {"prompt": "p"}, outputs.HdrOptions(sun_lamp=True))
    outputs.write_world_hdr(sky * 4.0, folder, "h", {})
    outputs.write_material(sky[:, :64], folder, "m", {})
    assert world.exr.stat().st_size > 0
heavy = sorted(name for name in sys.modules if name.partition(".")[0] in {"torch", "diffusers", "OpenEXR"})
print("imported", len(sys.argv) - 2, "modules; heavy:", heavy)
"""


def test_imaging_needs_no_torch():
    """World from Image and the exports run in a Blender without torch: imaging/ imports numpy only, and
    writes its files without the OpenEXR package."""
    import subprocess
    import sys

    names = sorted(
        path.stem for path in (ROOT / "generation" / "imaging").glob("*.py") if path.stem != "__init__"
    )
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(ROOT), *names], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(names)} modules; heavy: []"
