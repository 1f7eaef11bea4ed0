"""The extension as a package: manifest, zip contents, install, enable, disable, uninstall."""

import shutil
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


def test_zip_ships_code_only(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "__init__.py" in names and "blender_manifest.toml" in names
    assert any(name.startswith("generation/") for name in names)
    shipped_dev_files = [
        name
        for name in names
        if name.split("/")[0] in {"tests", "bench", ".ci", ".venv", ".cache", ".git"}
        or name in {"Makefile", "pyproject.toml", ".gitignore"}
        or name.startswith("requirements")
        or "__pycache__" in name
    ]
    assert shipped_dev_files == []


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
    """Collects what a panel's draw() puts on screen, so a test can read it without a window."""

    def __init__(self, texts):
        self.texts = texts
        self.alert = False

    def label(self, text="", **_):
        self.texts.append(text)

    def prop(self, data, name, text=None, **_):
        self.texts.append(f"prop:{name}")

    def panel(self, idname, **_):
        return RecordingLayout(self.texts), RecordingLayout(self.texts)  # header, body (drawn open)

    def operator(self, idname, text="", **_):
        self.texts.append(text or idname)
        return RecordingLayout(self.texts)  # takes the operator's properties as attributes

    def __getattr__(self, _name):
        # row(), box(), column(), split(), operator(), ...: a nested layout that records into the same list.
        return lambda *args, **kwargs: RecordingLayout(self.texts)


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
