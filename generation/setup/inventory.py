"""What this machine knows: the curated and cached models, LoRAs, upscalers, depth models and world presets,
each {"name", "kind", "downloaded", "licence"}: `blender -c promptscape models [--json]`.

Read from the local Hugging Face cache and the upscaler folder only: never the network.
"""

from pathlib import Path

from . import depth_models, model_catalog, prop_models, upscalers, world_presets

UNKNOWN_LICENCE = "see its model card"
DEPTH_LICENCES = {depth_models.DEFAULT: "Apache-2.0"}


def _depth_downloaded(source: str) -> bool:
    from ..engine.depth_estimator import check_source
    from ..errors import ModelNotFound

    try:
        check_source(source)
    except ModelNotFound:
        return False
    return True


def known(upscaler_folder: Path) -> list[dict]:
    """Every model this machine knows of, curated ones first, each kind in turn."""
    cached = model_catalog.cached_models(max_age=0)
    found = [
        {
            "name": model.repo_id,
            "kind": "model",
            "downloaded": model.repo_id in cached,
            "licence": model.licence,
        }
        for model in model_catalog.CURATED
    ]
    curated = {model.repo_id for model in model_catalog.CURATED}
    found += [
        {"name": repo_id, "kind": "model", "downloaded": True, "licence": UNKNOWN_LICENCE}
        for repo_id in cached
        if repo_id not in curated
    ]
    found += [
        {"name": repo_id, "kind": "lora", "downloaded": True, "licence": UNKNOWN_LICENCE}
        for repo_id in model_catalog.cached_loras(max_age=0)
    ]
    controlnets = model_catalog.cached_controlnets(max_age=0)
    found += [
        {
            "name": net.repo_id,
            "kind": "controlnet",
            "downloaded": net.repo_id in controlnets,
            "licence": net.licence,
        }
        for net in model_catalog.CURATED_CONTROLNETS
    ]
    curated_nets = {net.repo_id for net in model_catalog.CURATED_CONTROLNETS}
    found += [
        {"name": repo_id, "kind": "controlnet", "downloaded": True, "licence": UNKNOWN_LICENCE}
        for repo_id in controlnets
        if repo_id not in curated_nets
    ]
    for upscaler in upscalers.CURATED.values():
        file = Path(upscaler_folder) / upscaler.file
        present = file.is_file() or file.with_suffix(".safetensors").is_file()
        found.append(
            {"name": upscaler.id, "kind": "upscaler", "downloaded": present, "licence": upscaler.licence}
        )
    for source, licence in DEPTH_LICENCES.items():
        found.append(
            {
                "name": source,
                "kind": "depth_model",
                "downloaded": _depth_downloaded(source),
                "licence": licence,
            }
        )
    for preset in world_presets.PRESETS:
        downloaded = world_presets.is_downloaded(preset)
        found.append(
            {"name": preset.key, "kind": "world_preset", "downloaded": downloaded, "licence": preset.licence}
        )
    for entry in prop_models.PROP_MODELS:
        downloaded = prop_models.is_downloaded(entry.repo_id)
        found.append(
            {"name": entry.repo_id, "kind": "prop_model", "downloaded": downloaded, "licence": entry.licence}
        )
    return found
