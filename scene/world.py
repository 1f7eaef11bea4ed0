"""The scene's world: Texture Coordinate -> Mapping -> Environment Texture -> Background -> World Output."""

from pathlib import Path

import bpy

from . import images, nodes
from . import sun_lamp as sun_lamps


def target_world(scene):
    """The world to write into: the scene's own, a copy when other scenes share it, or a new one."""
    world = scene.world
    if world is None:
        world = bpy.data.worlds.new("Promptscape World")
        scene.world = world
    elif world.library is not None or world.users - int(world.use_fake_user) > 1:
        # Linked from a library (read-only), or used by other scenes: give this scene its own copy.
        world = world.copy()
        scene.world = world
    return world


def apply_world(
    scene,
    exr_path: Path,
    metadata: dict[str, str],
    strength: float = 1.0,
    pack: bool = False,
    sun_lamp: bool = False,
    sunless_path: Path | None = None,
):
    """Light `scene` with the HDRI at `exr_path`; re-applying swaps the image in place.

    With `sun_lamp` and a sun in `metadata`, the world shows the sun-less HDRI at `sunless_path` and a
    Sun lamp matched to the sun carries it (not counted twice); without, the world's own sun is back and
    our lamp goes. Only nodes named 'Promptscape ...' are made or changed; the user's other nodes stay in
    the tree. The image is loaded first, so a file Blender cannot read leaves the world untouched.
    """
    use_lamp = bool(sun_lamp and sunless_path and metadata.get("sun") == "found")
    image = images.load(sunless_path if use_lamp else exr_path, "Linear Rec.709", metadata, pack=pack)
    before = scene.world
    environment = environment_node(before)
    previous = environment.image if environment is not None else None
    try:
        world = _build(scene, image, metadata, strength)
        if metadata.get("sun") == "found":
            images.tag(world, {**metadata, **sun_lamps.world_sun(metadata, sun_lamps.world_rotation(world))})
        if use_lamp:
            sun_lamps.apply_sun_lamp(scene, world, metadata, strength)
        else:
            sun_lamps.remove_sun_lamp(scene)
        return world
    except Exception:
        # Nothing half-made stays behind: a world made or copied for this apply goes; a world updated in
        # place gets its image back; the new image goes.
        if scene.world != before:
            made, scene.world = scene.world, before
            bpy.data.worlds.remove(made)
        elif (environment := environment_node(before)) is not None:
            environment.image = previous
        bpy.data.images.remove(image)
        raise


def _build(scene, image, metadata: dict[str, str], strength: float):
    world = target_world(scene)
    tree = nodes.ensure_node_tree(world)
    coords = nodes.ours(tree, "Coordinates", "ShaderNodeTexCoord", (-900, 300))
    mapping = nodes.ours(tree, "Mapping", "ShaderNodeMapping", (-700, 300))
    environment = nodes.ours(tree, "Environment", "ShaderNodeTexEnvironment", (-450, 300))
    background = nodes.ours(tree, "Background", "ShaderNodeBackground", (-150, 300))
    output = nodes.output_node(tree, "ShaderNodeOutputWorld", (100, 300))

    previous = environment.image
    environment.image = image
    environment.interpolation = "Linear"
    background.inputs["Strength"].default_value = strength
    nodes.link(tree, coords.outputs["Generated"], mapping.inputs["Vector"])
    nodes.link(tree, mapping.outputs["Vector"], environment.inputs["Vector"])
    nodes.link(tree, environment.outputs["Color"], background.inputs["Color"])
    nodes.link(tree, background.outputs["Background"], output.inputs["Surface"])
    images.tag(world, metadata)
    if previous is not None and previous.users == 0:
        bpy.data.images.remove(previous)  # its file stays on disk and in the history
    return world


def environment_node(world):
    """Our Environment Texture node in `world`; None before the first apply."""
    return world.node_tree.nodes.get(nodes.PREFIX + "Environment") if world and world.node_tree else None


def mapping_node(world):
    """Our Mapping node in `world`, whose Z rotation turns the HDRI; None before the first apply."""
    return world.node_tree.nodes.get(nodes.PREFIX + "Mapping") if world and world.node_tree else None
