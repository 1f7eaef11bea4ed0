"""Physical truth for light: Blender's own sky rendered with Cycles as a float panorama.

Multiple-scattering Sky Texture, sun disc on (and once more off, to separate the sun from the sky),
through an equirectangular camera at the origin rotated (90, 0, -90) degrees, which reproduces the
Environment Texture's mapping exactly; box filter, no denoising, no clamping, float EXR. The physical
sky's lower hemisphere is black, so a ground of albedo 0.15 lit by the same sky replaces it.
"""

import functools
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np
import pytest
from scene_helpers import read_exr

GROUND_ALBEDO = 0.15
# The truth is the multiple-scattering sky of Blender 5.0 and later; 4.2 has only the single-scattering
# Nishita model. The light code under test is numpy only, the same on every Blender.
needs_multiple_scattering = pytest.mark.skipif(
    bpy.app.version < (5, 0, 0), reason="Blender 4.2 has no multiple-scattering sky to render the truth with"
)
WIDTH = 256


@dataclass(frozen=True)
class Sky:
    """One physical sky: sun elevation and world azimuth (degrees), air, aerosol and ozone density."""

    name: str
    elevation: float
    azimuth: float
    air: float = 1.0
    aerosol: float = 1.0
    ozone: float = 1.0
    cloud: float = 0.0  # vertical optical depth of the thickest cloud in a layer overhead (0: none)

    @property
    def sun_direction(self) -> np.ndarray:
        el, az = math.radians(self.elevation), math.radians(self.azimuth)
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


# Clear to hazy, low to high, any azimuth; heavy aerosol stands in for an overcast day.
SKIES = (
    Sky("clear 35", 35.0, 60.0),
    Sky("clear noon 70", 70.0, 250.0),
    Sky("clear 60", 60.0, 90.0),
    Sky("hazy 15", 15.0, 330.0, air=1.5, aerosol=4.0),
    Sky("red low 10", 10.0, 150.0, air=2.0, aerosol=2.0),
    Sky("hazy 50", 50.0, 200.0, aerosol=3.0),
    Sky("clear 45", 45.0, 170.0, air=1.2, aerosol=2.0),
    Sky("clear low 12", 12.0, 20.0),
)
# Wide hazy glows that merge with the horizon: the light is right, the direction is found 6-7 degrees low.
HORIZON_GLOWS = (Sky("hazy 25", 25.0, 100.0, aerosol=5.0), Sky("dense air 20", 20.0, 280.0, air=2.0))
OVERCAST = Sky("overcast stand-in", 40.0, 10.0, air=2.0, aerosol=10.0)
# What a model draws and the clear skies above do not show (issue 27): a high sun behind thin, broken
# cloud; a low sun in a wide glare of haze; a red sun just above the horizon that carries almost no light.
HARD_SKIES = (
    Sky("thin cloud 48", 48.0, 300.0, aerosol=10.0, cloud=0.7),
    Sky("haze glare 8", 8.0, 130.0, aerosol=10.0),
    Sky("red sun 3", 3.0, 240.0, air=4.0, aerosol=6.0),
)
WIDE_GLARES = (HARD_SKIES[1],)  # an 8-bit glare this wide holds the elevation only to about 8 degrees


@dataclass(frozen=True)
class Truth:
    """A rendered sky with its ground: the radiance with the sun and without it (same ground)."""

    sky: Sky
    radiance: np.ndarray
    sunless: np.ndarray


def render_sky(sky: Sky, sun_disc: bool, samples: int, width: int = WIDTH) -> np.ndarray:
    """The sky alone (lower hemisphere as the model gives it), linear float, rows top first."""
    scene = bpy.data.scenes.new(f"Truth {sky.name}")
    world = bpy.data.worlds.new(f"Truth {sky.name}")
    scene.world = world
    texture = world.node_tree.nodes.new("ShaderNodeTexSky")
    texture.sky_type = "MULTIPLE_SCATTERING"
    texture.sun_disc = sun_disc
    texture.sun_elevation = math.radians(sky.elevation)
    texture.sun_rotation = math.radians(90.0 - sky.azimuth)  # world azimuth = 90 - sun_rotation
    texture.air_density, texture.aerosol_density, texture.ozone_density = sky.air, sky.aerosol, sky.ozone
    world.node_tree.links.new(texture.outputs["Color"], world.node_tree.nodes["Background"].inputs["Color"])
    cloud = _cloud_layer(scene, sky.cloud) if sky.cloud else None
    camera = bpy.data.objects.new("Truth camera", bpy.data.cameras.new("Truth camera"))
    camera.data.type = "PANO"
    camera.data.panorama_type = "EQUIRECTANGULAR"
    camera.rotation_euler = (math.pi / 2, 0.0, -math.pi / 2)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device, cycles.samples, cycles.use_denoising = "CPU", samples, False
    cycles.pixel_filter_type = "BOX"
    cycles.sample_clamp_direct = cycles.sample_clamp_indirect = 0.0
    scene.render.threads_mode, scene.render.threads = "FIXED", 2
    scene.render.resolution_x, scene.render.resolution_y = width, width // 2
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "OPEN_EXR"
    scene.render.image_settings.color_depth = "32"
    with tempfile.TemporaryDirectory() as folder:
        scene.render.filepath = str(Path(folder) / "sky.exr")
        bpy.ops.render.render(write_still=True, scene=scene.name)
        pixels = read_exr(scene.render.filepath).astype(np.float32)
    bpy.data.objects.remove(camera)
    if cloud is not None:
        bpy.data.materials.remove(cloud.active_material)
        bpy.data.meshes.remove(cloud.data)
    bpy.data.scenes.remove(scene)
    bpy.data.worlds.remove(world)
    return pixels


def _cloud_layer(scene, depth: float):
    """A thin cloud layer 1 unit overhead, wide enough to reach 0.3 degrees above the horizon: broken
    (noise) up to a vertical optical depth `depth`, so a ray through it keeps exp(-depth / cos) of what
    is behind it and the rest is scattered, half on through the cloud, half back up."""
    plane = bpy.data.objects.new("Truth cloud", bpy.data.meshes.new("Truth cloud"))
    plane.data.from_pydata(
        [(-200, -200, 1), (200, -200, 1), (200, 200, 1), (-200, 200, 1)], [], [(0, 1, 2, 3)]
    )
    material = bpy.data.materials.new("Truth cloud")
    plane.data.materials.append(material)
    scene.collection.objects.link(plane)
    tree = material.node_tree
    nodes, link = tree.nodes, tree.links.new
    for node in list(nodes):
        if node.type != "OUTPUT_MATERIAL":
            nodes.remove(node)

    def node(kind, **inputs):
        made = nodes.new(kind)
        for name, value in inputs.items():
            if name.isupper():
                setattr(made, name.lower(), value)
            elif isinstance(value, bpy.types.NodeSocket):
                link(value, made.inputs[name])
            else:
                made.inputs[name].default_value = value
        return made

    coordinates = node("ShaderNodeTexCoord")
    noise = node("ShaderNodeTexNoise", Vector=coordinates.outputs["Object"], Scale=2.5, Detail=2.0)
    # Noise 0.45-0.65 -> optical depth 0-`depth`: clear gaps, thin edges and thicker cores.
    vertical = node("ShaderNodeMapRange", Value=noise.outputs["Fac"], **{"From Min": 0.45, "From Max": 0.65})
    vertical.inputs["To Max"].default_value = depth
    geometry = node("ShaderNodeNewGeometry")
    cosine = node("ShaderNodeVectorMath", OPERATION="DOT_PRODUCT")
    link(geometry.outputs["Incoming"], cosine.inputs[0])
    link(geometry.outputs["Normal"], cosine.inputs[1])
    slant = node("ShaderNodeMath", OPERATION="ABSOLUTE", Value=cosine.outputs["Value"])
    path = node("ShaderNodeMath", OPERATION="DIVIDE")
    link(vertical.outputs["Result"], path.inputs[0])
    link(slant.outputs["Value"], path.inputs[1])
    negative = node("ShaderNodeMath", OPERATION="MULTIPLY", Value=path.outputs["Value"])
    negative.inputs[1].default_value = -1.0
    kept = node("ShaderNodeMath", OPERATION="EXPONENT", Value=negative.outputs["Value"])
    scatter = node("ShaderNodeMixShader", Fac=0.5)
    link(node("ShaderNodeBsdfTranslucent").outputs["BSDF"], scatter.inputs[1])
    link(node("ShaderNodeBsdfDiffuse").outputs["BSDF"], scatter.inputs[2])
    mix = node("ShaderNodeMixShader", Fac=kept.outputs["Value"])
    link(scatter.outputs["Shader"], mix.inputs[1])
    link(node("ShaderNodeBsdfTransparent").outputs["BSDF"], mix.inputs[2])
    link(mix.outputs["Shader"], nodes["Material Output"].inputs["Surface"])
    return plane


@functools.cache  # each sky is rendered once per test session
def truth(sky: Sky, quality) -> Truth:
    """The sky with and without its sun disc (1024 samples: the sub-pixel disc needs them to integrate
    to its energy), each above a ground of albedo 0.15 lit by the whole sky. Under a cloud layer the sun
    also lights the cloud, which stays when the sun is hidden: there only the pixels around the disc
    come from the render without it."""
    radiance = render_sky(sky, True, 1024)
    sunless = render_sky(sky, False, 16)
    if sky.cloud:
        height, width = radiance.shape[:2]
        disc = quality.panorama_directions(height, width) @ sky.sun_direction > math.cos(
            3.0 * math.pi / height
        )
        sunless = np.where(disc[..., None], sunless, radiance)
    ground = GROUND_ALBEDO * quality.horizontal_irradiance(radiance) / np.pi
    for image in (radiance, sunless):
        image[image.shape[0] // 2 :] = ground.astype(np.float32)
    return Truth(sky, radiance, sunless)


def figures(truth: Truth, result, quality) -> dict:
    """Truth against a conversion of its 8-bit photograph: sun direction error (degrees), sun share,
    lit/shadow and (r, g) of the light for both, and the seam (log luminance) of both."""
    sunless = result.sunless if result.sunless is not None else result.radiance
    found = result.sun.direction if result.sun is not None else None
    log = lambda image: np.log(np.maximum(quality.luminance(image), 1e-12))  # noqa: E731
    return {
        "direction_error": quality.angle_between(found, truth.sky.sun_direction) if found else float("inf"),
        "share": quality.sun_share(truth.radiance, truth.sunless),
        "share_ours": quality.sun_share(result.radiance, sunless),
        "lit_shadow": quality.lit_shadow_ratio(truth.radiance, truth.sunless),
        "lit_shadow_ours": quality.lit_shadow_ratio(result.radiance, sunless),
        "chromaticity": quality.light_chromaticity(truth.radiance),
        "chromaticity_ours": quality.light_chromaticity(result.radiance),
        "seam": quality.seam_ratio(log(truth.radiance)).ratio,
        "seam_ours": quality.seam_ratio(log(result.radiance)).ratio,
        "turbidity": result.sun.turbidity if result.sun is not None else 0.0,
    }
