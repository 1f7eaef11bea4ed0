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


def test_imaging_needs_no_torch():
    # World from Image and the exports run in a Blender without torch: imaging/ imports numpy only.
    for path in (ROOT / "generation" / "imaging").glob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "import diffusers" not in text, path.name
