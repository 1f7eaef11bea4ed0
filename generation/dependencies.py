"""Which of the Python packages Promptscape runs on are importable, found without importing them.

Importing torch takes seconds and hundreds of MB; this only looks the packages up, so the
preferences and the sidebar can show the status at every redraw.
"""

import importlib.metadata
import importlib.util
import sys

# Needed to generate; without them the from-image operators still work.
REQUIRED = ("torch", "diffusers", "transformers")
# Used when present: faster loading, CPU offload for small GPUs.
OPTIONAL = ("accelerate", "safetensors")


def version_of(name: str) -> str | None:
    """The installed version of a package, or None when it cannot be imported."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def status() -> dict[str, str | None]:
    """Each required and optional package mapped to its version, or None when missing."""
    return {name: version_of(name) for name in REQUIRED + OPTIONAL}


def missing() -> list[str]:
    """The required packages that are not importable, in install order."""
    return [name for name in REQUIRED if version_of(name) is None]


def torch_devices() -> str:
    """torch's devices in words (GPU name and memory), once torch is imported; importing it here would
    stall the UI for seconds, so before that it says how to find out."""
    torch = sys.modules.get("torch")
    if torch is None:
        return "GPU: shown after the first generation or a Self-Test" if version_of("torch") else ""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return f"CUDA {torch.version.cuda}: {props.name}, {props.total_memory / 2**30:.1f} GB"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "Apple Metal (MPS)"
    return "No GPU found: generating runs on the CPU (slow)"
