"""A PBR material from the map files: albedo, roughness, normal, height and AO into a Principled BSDF."""

from dataclasses import dataclass
from pathlib import Path

import bpy

from ..generation.errors import PromptscapeError
from . import images, nodes


@dataclass(frozen=True)
class MaterialMaps:
    """The map files of one material, as written by the generation layer."""

    albedo: Path
    normal: Path
    roughness: Path
    height: Path
    ao: Path


def objects_to_texture(context, objects=None) -> list:
    """The objects a material goes on: the given ones (objects or their names), else the selected, else
    the active object. Given ones that cannot take it are refused by name; the selection is filtered."""
    if objects is None:
        found = list(getattr(context, "selected_objects", None) or [])
        if not found and getattr(context, "active_object", None) is not None:
            found = [context.active_object]
        return [obj for obj in found if takes_material(obj)]
    if isinstance(objects, str | bpy.types.Object):  # one object, as a script often writes it
        objects = [objects]
    given = [named_object(entry) for entry in objects]
    refused = [obj.name for obj in given if not takes_material(obj)]
    if refused:
        raise PromptscapeError(
            f"{', '.join(refused)} cannot take a material (not a mesh, curve or text of this file, or "
            "linked from another .blend): give mesh objects"
        )
    return given


def named_object(entry):
    """An object given as itself or by its name; anything else is refused in words."""
    if isinstance(entry, bpy.types.Object):
        return entry
    if isinstance(entry, str):
        if entry not in bpy.data.objects:
            raise PromptscapeError(f"No object named {entry!r} in the file")
        return bpy.data.objects[entry]
    raise PromptscapeError(f"objects: give Blender objects or their names, not {entry!r}")


def takes_material(obj) -> bool:
    return obj is not None and hasattr(obj.data, "materials") and editable(obj)


def editable(obj) -> bool:
    """False for objects (or meshes) linked from another .blend: their material slots are read-only."""
    return obj.library is None and getattr(obj.data, "library", None) is None


def needs_box_mapping(objects) -> bool:
    """True when an object has no UV map, so image textures must be projected instead."""
    return any(obj.type == "MESH" and not obj.data.uv_layers for obj in objects)


def build_material(
    name: str,
    maps: MaterialMaps,
    metadata: dict[str, str],
    tiling: float = 1.0,
    normal_strength: float = 1.0,
    height_mode: str = "BUMP",
    box_mapping: bool = False,
    pack: bool = False,
):
    """A new material wired from the maps; images are loaded first, so a bad file changes nothing."""
    loaded = images.load_all(
        {
            "albedo": (maps.albedo, "sRGB"),
            "roughness": (maps.roughness, "Non-Color"),
            "normal": (maps.normal, "Non-Color"),
            "height": (maps.height, "Non-Color"),
            "ao": (maps.ao, "Non-Color"),
        },
        metadata,
        pack,
    )
    material = bpy.data.materials.new(name)
    try:
        _wire(material, loaded, tiling, normal_strength, height_mode, box_mapping)
    except Exception:  # no half-built material or unused images stay behind
        bpy.data.materials.remove(material)
        for image in loaded.values():
            bpy.data.images.remove(image)
        raise
    images.tag(material, metadata)
    return material


def _wire(material, loaded: dict, tiling: float, normal_strength: float, height_mode: str, box_mapping: bool):
    """Build a new material's node tree around its loaded images."""
    tree = nodes.ensure_node_tree(material)
    bsdf = nodes.output_node(tree, "ShaderNodeBsdfPrincipled", (200, 300))
    output = nodes.output_node(tree, "ShaderNodeOutputMaterial", (500, 300))
    coords = nodes.ours(tree, "Coordinates", "ShaderNodeTexCoord", (-1200, 300))
    mapping = nodes.ours(tree, "Mapping", "ShaderNodeMapping", (-1000, 300))
    mapping.inputs["Scale"].default_value = (tiling, tiling, tiling)
    # Without UVs, project from object space in a box; with UVs, follow the mesh's own layout.
    nodes.link(tree, coords.outputs["Object" if box_mapping else "UV"], mapping.inputs["Vector"])

    textures = {}
    for row, (role, image) in enumerate(loaded.items()):
        texture = nodes.ours(tree, role.capitalize(), "ShaderNodeTexImage", (-700, 500 - row * 280))
        texture.image = image
        if box_mapping:
            texture.projection = "BOX"
            texture.projection_blend = 0.2
        nodes.link(tree, mapping.outputs["Vector"], texture.inputs["Vector"])
        textures[role] = texture

    # AO darkens crevices the renderer's own occlusion misses; half strength avoids doubling it.
    ao_mix = nodes.ours(tree, "AO Multiply", "ShaderNodeMix", (-250, 550))
    ao_mix.data_type = "RGBA"
    ao_mix.blend_type = "MULTIPLY"
    ao_mix.inputs["Factor"].default_value = 0.5
    nodes.link(tree, textures["albedo"].outputs["Color"], ao_mix.inputs[6])
    nodes.link(tree, textures["ao"].outputs["Color"], ao_mix.inputs[7])
    nodes.link(tree, ao_mix.outputs[2], bsdf.inputs["Base Color"])
    nodes.link(tree, textures["roughness"].outputs["Color"], bsdf.inputs["Roughness"])

    normal_map = nodes.ours(tree, "Normal Map", "ShaderNodeNormalMap", (-250, 0))
    normal_map.inputs["Strength"].default_value = normal_strength
    nodes.link(tree, textures["normal"].outputs["Color"], normal_map.inputs["Color"])
    if height_mode == "DISPLACEMENT":
        displacement = nodes.ours(tree, "Displacement", "ShaderNodeDisplacement", (200, -250))
        displacement.inputs["Scale"].default_value = 0.05
        nodes.link(tree, textures["height"].outputs["Color"], displacement.inputs["Height"])
        nodes.link(tree, displacement.outputs["Displacement"], output.inputs["Displacement"])
        nodes.link(tree, normal_map.outputs["Normal"], bsdf.inputs["Normal"])
        material.displacement_method = "BOTH"
    else:
        bump = nodes.ours(tree, "Bump", "ShaderNodeBump", (0, -100))
        bump.inputs["Strength"].default_value = 0.3
        nodes.link(tree, textures["height"].outputs["Color"], bump.inputs["Height"])
        nodes.link(tree, normal_map.outputs["Normal"], bump.inputs["Normal"])
        nodes.link(tree, bump.outputs["Normal"], bsdf.inputs["Normal"])


def assign(material, objects) -> list[str]:
    """Put `material` in each object's active slot (adding one if it has none).

    A material of the user's that it replaces is kept in the file with a fake user when nothing else uses
    it, so assigning never loses the user's work; returns their names. A replaced Promptscape material
    that nothing uses any more is removed with its images: its files stay on disk and in the history.
    """
    changed = []  # (object, slot or None when a slot was added, the material it held)
    try:
        for obj in objects:
            if obj.material_slots:
                slot = obj.material_slots[obj.active_material_index]
                changed.append((obj, slot, slot.material))
                slot.material = material
            else:
                obj.data.materials.append(material)
                changed.append((obj, None, None))
    except Exception:  # all the objects get the material, or none does
        for obj, slot, previous in reversed(changed):
            if slot is None:
                obj.data.materials.pop()
            else:
                slot.material = previous
        raise
    kept, replaced = [], set()
    for _obj, _slot, previous in changed:
        if previous is None or previous == material or previous.users > 0:
            continue
        if images.METADATA_KEY in previous:
            replaced.add(previous)
        elif not previous.use_fake_user:
            previous.use_fake_user = True
            kept.append(previous.name)
    for previous in replaced:
        remove_with_images(previous)
    return kept


def replace_in_slots(material, slots) -> None:
    """Put `material` in `slots` (an upscale takes its original's place); a Promptscape material left with
    no users is removed with its images, as assign() does: its files stay on disk and in the history."""
    previous = {slot.material for slot in slots}
    for slot in slots:
        slot.material = material
    for old in previous:
        if old is not None and old != material and old.users == 0 and images.METADATA_KEY in old:
            remove_with_images(old)


def remove_with_images(material):
    """Remove a material of ours and the images only it used."""
    used = [node.image for node in material.node_tree.nodes if node.bl_idname == "ShaderNodeTexImage"]
    bpy.data.materials.remove(material)
    for image in used:
        if image is not None and image.users == 0:
            bpy.data.images.remove(image)
