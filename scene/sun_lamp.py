"""The world's sun as a Sun lamp: matched to the sun found in the panorama, turned with the world.

Its direction, strength (irradiance on a surface facing it, W/m^2 in the world's units), colour and
angular diameter come from the metadata a world result carries (outputs.sun_metadata). A driver keeps its
azimuth on the world's Mapping Z rotation, so turning the HDRI turns the sun with it.
"""

import math

import bpy

from . import nodes

LAMP_NAME = nodes.PREFIX + "Sun"
MARK = "promptscape_sun"  # the custom property that marks our lamp among the scene's objects


def _floats(text: str) -> list[float]:
    return [float(value) for value in text.split(",")]


def world_rotation(world) -> float:
    """The Z rotation (radians) of our Mapping node: a world direction d shows the texture at Rz(r) d."""
    mapping = world.node_tree.nodes.get(nodes.PREFIX + "Mapping") if world and world.node_tree else None
    return float(mapping.inputs["Rotation"].default_value[2]) if mapping is not None else 0.0


def world_sun(metadata: dict, rotation: float) -> dict[str, str]:
    """The sun's world-space direction and Blender azimuth with the world's rotation applied."""
    x, y, z = _floats(metadata["sun_direction"])
    c, s = math.cos(-rotation), math.sin(-rotation)
    direction = (c * x - s * y, s * x + c * y, z)
    azimuth = math.degrees(math.atan2(direction[1], direction[0])) % 360.0
    return {
        "sun_world_direction": ",".join(f"{v:.5f}" for v in direction),
        "sun_world_azimuth_deg": f"{azimuth:.2f}",
        "sun_world_rotation_deg": f"{math.degrees(rotation):.2f}",
    }


def apply_sun_lamp(scene, world, metadata: dict, strength: float):
    """Make or update our Sun lamp in `scene` from the world's sun; it follows the world's rotation."""
    lamp = sun_lamp_of(scene)
    if lamp is None:
        lamp = bpy.data.objects.new(LAMP_NAME, bpy.data.lights.new(LAMP_NAME, "SUN"))
        lamp[MARK] = True
        scene.collection.objects.link(lamp)
    light = lamp.data
    light.energy = float(metadata["sun_strength"]) * strength
    light.color = _floats(metadata["sun_colour"])
    light.angle = math.radians(float(metadata["sun_angle_deg"]))
    x, y, z = _floats(metadata["sun_direction"])
    elevation, azimuth = math.asin(max(-1.0, min(1.0, z))), math.atan2(y, x)
    # A Sun lamp shines down its local -Z: tilt +Z from the zenith toward the sun, then turn it round.
    lamp.rotation_mode = "XYZ"
    lamp.rotation_euler = (0.0, math.pi / 2 - elevation, azimuth)
    nodes.follow_world_rotation(lamp, world, azimuth)
    return lamp


def sun_lamp_of(scene):
    """Our Sun lamp in `scene`, or None."""
    return next((obj for obj in scene.collection.objects if obj.get(MARK) and obj.type == "LIGHT"), None)


def remove_sun_lamp(scene):
    """Take our Sun lamp out of `scene` (the world's texture carries the sun again)."""
    lamp = sun_lamp_of(scene)
    if lamp is None:
        return
    scene.collection.objects.unlink(lamp)
    if lamp.users == 0:
        light = lamp.data
        bpy.data.objects.remove(lamp)
        if light.users == 0:
            bpy.data.lights.remove(light)
