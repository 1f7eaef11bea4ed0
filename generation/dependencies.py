"""Which of the Python packages Promptscape runs on are importable, found without importing them.

Importing torch takes seconds and hundreds of MB; this only looks the packages up, so the
preferences and the sidebar can show the status at every redraw.
"""

import importlib.metadata
import importlib.util

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
