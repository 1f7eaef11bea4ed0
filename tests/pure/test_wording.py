"""The command line's words (flow/wording.py) replace sentences the code really says: a message reworded
for the sidebar must not silently keep its Preferences wording on the command line."""

import ast
import importlib.util

from conftest import ROOT

PACKAGES = ("flow", "generation", "operators", "panels", "scene")  # what ships, besides the top level


def wording():
    spec = importlib.util.spec_from_file_location("wording", ROOT / "flow" / "wording.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # it imports nothing: no bpy needed
    return module


def message_texts() -> list[str]:
    """Every string constant of the shipped code, with implicit concatenations joined (as Python does)."""
    texts = []
    shipped = [ROOT.glob("*.py"), *(ROOT.glob(f"{package}/**/*.py") for package in PACKAGES)]
    for path in (path for paths in shipped for path in paths if path.name != "wording.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        texts += [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
    return texts


def test_every_sidebar_sentence_the_command_line_rewords_is_said_somewhere():
    texts = message_texts()
    for sidebar, flag in wording().HEADLESS:
        assert any(sidebar in text for text in texts), sidebar
        assert "Preferences" not in flag


def test_a_headless_message_names_the_flag():
    message = 'model "x" does not exist: check the model in Preferences > Add-ons > Promptscape'
    assert wording().headless(message) == 'model "x" does not exist: ' + wording().HEADLESS[0][1]
