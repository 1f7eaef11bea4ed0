"""Which of the Python packages Promptscape runs on are importable, found without importing them.

Importing torch takes seconds and hundreds of MB; this only looks the packages up, once: the sidebar
redraws ten times a second while a job runs, and a look-up walks sys.path. What is importable changes
only when sys.path does, and the installer calls `forget()` when it changes it.
"""

import importlib.metadata
import importlib.util
import sys

# Needed to generate; without them the from-image operators still work.
REQUIRED = ("torch", "diffusers", "transformers")
# Used when present: faster loading, CPU offload for small GPUs.
OPTIONAL = ("accelerate", "safetensors")
# Props: marching cubes (scikit-image, which brings scipy).
OPTIONAL += ("skimage", "xatlas")
DISTRIBUTIONS = {"skimage": "scikit-image"}  # import names whose package is named otherwise


def version_of(name: str) -> str | None:
    """The installed version of a package, or None when it cannot be imported."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(name, name))
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


_found: dict[str, str | None] = {}


def status() -> dict[str, str | None]:
    """Each required and optional package mapped to its version, or None when missing."""
    if not _found:
        _found.update({name: version_of(name) for name in REQUIRED + OPTIONAL})
    return dict(_found)


def missing() -> list[str]:
    """The required packages that are not importable, in install order."""
    found = status()
    return [name for name in REQUIRED if found[name] is None]


def forget():
    """Look the packages up again next time (sys.path changed)."""
    _found.clear()


def torch_devices() -> str:
    """torch's devices in words (GPU name and memory), once torch is imported; importing it here would
    stall the UI for seconds, so before that it says how to find out."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "GPU: shown after the first generation or a Self-Test" if status()["torch"] else ""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"CUDA {torch.version.cuda}: {props.name}, {props.total_memory / 2**30:.1f} GB"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple Metal (MPS)"
    return "No GPU found: generating runs on the CPU (slow)"
