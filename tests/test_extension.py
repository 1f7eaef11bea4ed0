"""The extension as a package: manifest, zip contents, install, enable, disable, uninstall."""

import json
import shutil
import subprocess
import tomllib
import zipfile

import bpy

import blender_tools
from blender_tools import ROOT, run_blender_ext, run_in_fresh_blender


def test_manifest_passes_blenders_validator():
    done = run_blender_ext("validate", str(ROOT))
    assert done.returncode == 0, done.stdout + done.stderr


def test_broken_manifest_is_rejected(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv*", ".git", ".cache", "__pycache__"))
    manifest = source / "blender_manifest.toml"
    text = manifest.read_text().replace('version = "0.1.0"', 'version = "one"')
    manifest.write_text(text.replace("PBR materials", "PBR materials."))
    done = run_blender_ext("validate", str(source))
    assert done.returncode == 1
    assert "version" in done.stdout + done.stderr


# What may ship: the registration and public surfaces, the packages' code, the manifest, licence and README.
SHIPPED_FILES = {"__init__.py", "api.py", "cli.py", "preferences.py", "properties.py"}
SHIPPED_FILES |= {"blender_manifest.toml", "LICENSE", "README.md"}
SHIPPED_PACKAGES = {"flow", "generation", "operators", "panels", "scene"}


def test_zip_ships_code_only(extension_zip):
    names = [name for name in zipfile.ZipFile(extension_zip).namelist() if not name.endswith("/")]
    assert {"__init__.py", "blender_manifest.toml", "generation/engine/worker.py"} <= set(names)
    code = [name for name in names if name.split("/")[0] in SHIPPED_PACKAGES and name.endswith(".py")]
    unexpected = [name for name in names if name not in SHIPPED_FILES and name not in code]
    assert unexpected == []  # no tests/, bench/, tools/, server/, docs/, .venv, caches


def test_the_built_zip_passes_blenders_validator(extension_zip):
    done = run_blender_ext("validate", str(extension_zip))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_extension_repository_lists_this_version(tmp_path):
    index = json.loads(blender_tools.build_repo(tmp_path).read_text())
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text())
    (entry,) = index["data"]
    assert entry["id"] == manifest["id"] and entry["version"] == manifest["version"]
    assert (tmp_path / entry["archive_url"]).is_file()
    assert entry["archive_hash"].startswith("sha256:")


def test_installed_extension_is_enabled(addon):
    assert addon.__name__ == blender_tools.MODULE
    assert blender_tools.MODULE in bpy.context.preferences.addons
    assert hasattr(bpy.types, "PROMPTSCAPE_PT_main")
    assert bpy.context.scene.promptscape.mode == "WORLD"
    prefs = bpy.context.preferences.addons[blender_tools.MODULE].preferences
    assert prefs.device == "auto"


def test_install_enable_disable_uninstall_round_trip(extension_zip):
    # In a fresh Blender, so the session's installed copy is untouched.
    out = run_in_fresh_blender(
        f"""
        import bpy
        import addon_utils, sys, threading
        module = "{blender_tools.MODULE}"

        def leftovers():
            found = [name for name in dir(bpy.types) if name.startswith("PROMPTSCAPE_")]
            if hasattr(bpy.types.Scene, "promptscape"):
                found.append("Scene.promptscape")
            found += [t.name for t in threading.enumerate() if t.name.startswith("promptscape")]
            found += [h.__module__ for h in bpy.app.handlers.load_pre + bpy.app.handlers.load_post
                      if h.__module__.startswith(module)]
            return found

        baseline_threads = threading.active_count()
        assert bpy.ops.extensions.package_install_files(
            filepath=r"{extension_zip}", repo="user_default", enable_on_install=True) == {{"FINISHED"}}
        assert module in bpy.context.preferences.addons
        assert hasattr(bpy.types.Scene, "promptscape")
        for _ in range(2):
            addon_utils.disable(module, default_set=True)
            assert leftovers() == [], leftovers()
            assert module not in bpy.context.preferences.addons
            addon_utils.enable(module, default_set=True)
            assert bpy.context.scene.promptscape.steps == 25
        repos = bpy.context.preferences.extensions.repos
        index = next(i for i, repo in enumerate(repos) if repo.module == "user_default")
        assert bpy.ops.extensions.package_uninstall(repo_index=index, pkg_id="promptscape") == {{"FINISHED"}}
        assert module not in bpy.context.preferences.addons
        assert leftovers() == [], leftovers()
        assert threading.active_count() == baseline_threads
        print("ROUND TRIP OK")
        """
    )
    assert "ROUND TRIP OK" in out


class RecordingLayout:
    """Stands in for a UILayout so a panel's draw() runs without a window, and records what it shows.

    It is strict where Blender is: every method, keyword and attribute must exist on this Blender's
    UILayout, every drawn property on its data, and every operator (with the properties set on it).
    """

    def __init__(self, texts):
        object.__setattr__(self, "texts", texts)

    def __setattr__(self, name, value):
        assert name in bpy.types.UILayout.bl_rna.properties, f"UILayout has no attribute {name!r}"

    def __getattr__(self, name):
        functions = bpy.types.UILayout.bl_rna.functions
        assert name in functions, f"UILayout has no method {name!r}"
        accepted = {parameter.identifier for parameter in functions[name].parameters}

        def call(*args, **kwargs):
            assert set(kwargs) <= accepted, f"UILayout.{name} takes no {sorted(set(kwargs) - accepted)}"
            return self._record(name, args, kwargs)

        return call

    def _record(self, name, args, kwargs):
        nested = RecordingLayout(self.texts)
        if name == "label":
            self.texts.append(kwargs.get("text", ""))
        elif name == "prop":
            data, prop = args[:2]
            assert prop in data.bl_rna.properties, f"{data.bl_rna.identifier} has no property {prop!r}"
            self.texts.append(f"prop:{prop}")
        elif name == "operator":
            rna = getattr(getattr(bpy.ops, args[0].split(".")[0]), args[0].split(".")[1]).get_rna_type()
            self.texts.append(kwargs.get("text") or args[0])
            return OperatorProperties(rna)
        elif name == "panel":
            return nested, nested  # header, body (drawn open)
        return nested


class OperatorProperties:
    """What layout.operator() returns: only the operator's own properties can be set on it."""

    def __init__(self, rna):
        object.__setattr__(self, "rna", rna)

    def __setattr__(self, name, value):
        assert name in self.rna.properties, f"{self.rna.identifier} has no property {name!r}"


def draw(panel_class, context) -> list[str]:
    """What `panel_class.draw` puts on screen: its methods bound to a stand-in with a recording layout."""
    texts = []
    methods = {name: value for name, value in vars(panel_class).items() if callable(value)}
    panel_class.draw(type("P", (), {**methods, "layout": RecordingLayout(texts)})(), context)
    return texts


def test_registers_without_torch_and_panel_says_what_is_missing(extension_zip):
    out = run_in_fresh_blender(
        f"""
        import sys, bpy
        from test_extension import draw
        assert bpy.ops.extensions.package_install_files(
            filepath=r"{extension_zip}", repo="user_default", enable_on_install=True) == {{"FINISHED"}}
        assert "{blender_tools.MODULE}" in bpy.context.preferences.addons
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("\\n".join(draw(bpy.types.PROMPTSCAPE_PT_main, bpy.context)))
        """,
        block_imports=("torch", "diffusers", "transformers"),
    )
    assert "Missing: torch, diffusers, transformers" in out
    assert "Preferences" in out


def test_generation_imports_without_blender_and_without_torch():
    # The generation layer on its own, in a plain Python where bpy, torch, diffusers and transformers are
    # all unimportable: it must never import bpy, and must import the heavy packages only when used.
    out = run_in_fresh_blender(
        f"""
        import importlib, importlib.util, pathlib, sys
        folder = pathlib.Path(r"{ROOT / "generation"}")
        spec = importlib.util.spec_from_file_location(
            "generation", folder / "__init__.py", submodule_search_locations=[str(folder)])
        sys.modules["generation"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["generation"])
        names = sorted(
            ".".join(path.relative_to(folder).with_suffix("").parts)
            for path in folder.rglob("*.py")
            if path.name != "__init__.py"
        )
        for name in names:
            importlib.import_module("generation." + name)
        print("IMPORTED", " ".join(names))
        """,
        block_imports=("bpy", "torch", "diffusers", "transformers", "huggingface_hub", "peft"),
    )
    assert "IMPORTED" in out and "engine.worker" in out and "imaging.hdr" in out


def test_the_zip_leaves_out_what_git_ignores(tmp_path):
    """`make demo` then `make zip`: the demo's .blend and renders (ignored by git) never reach artists."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("blender_manifest.toml", "__init__.py", "LICENSE", ".gitignore"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(["git", "init", "-q", str(source)], check=True)
    subprocess.run(["git", "-C", str(source), "add", "."], check=True)
    (source / "demo-output").mkdir()
    (source / "demo-output" / "promptscape-demo.blend").write_bytes(b"BLENDER")
    (source / "renders").mkdir()  # a generated folder no manifest pattern names
    (source / "renders" / "view.exr").write_bytes(b"exr")
    (source / ".gitignore").write_text((source / ".gitignore").read_text() + "renders/\n")
    (source / "new_module.py").write_text("")  # new, not yet added: still code that ships
    names = zipfile.ZipFile(blender_tools.build_zip(tmp_path / "dist", source)).namelist()
    assert "new_module.py" in names and "__init__.py" in names
    assert not [name for name in names if name.startswith(("demo-output", "renders"))]
