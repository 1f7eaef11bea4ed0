"""The image-to-3D models a prop can be shaped with: what to download of each, its licence and its cost.

TripoSR's repository holds config.yaml and a pickled model.ckpt (1.7 GB): both are fetched, nothing else
(its figures and examples are not needed). The .ckpt is read with weights_only and kept as .safetensors on
first use (engine/triposr_checkpoint.py).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogProp:
    repo_id: str
    name: str
    licence: str
    files: tuple[str, ...]
    vram_gb: float  # the shape stage at its default grid (256³), fp32
    note: str


PROP_MODELS = (
    CatalogProp(
        "stabilityai/TripoSR",
        "TripoSR",
        "MIT",
        ("config.yaml", "model.ckpt"),
        6.0,
        "One image to a coloured mesh in seconds on a GPU (minutes on the CPU); the back side is guessed",
    ),
)


def named(repo_id: str) -> CatalogProp | None:
    return next((entry for entry in PROP_MODELS if entry.repo_id == repo_id.strip()), None)


def is_downloaded(repo_id: str) -> bool:
    """Whether the model's checkpoint is in the local Hugging Face cache (no network)."""
    from ..engine.triposr_checkpoint import resolve_prop_model
    from ..errors import ModelNotFound

    try:
        resolve_prop_model(repo_id)
    except ModelNotFound:
        return False
    return True
