"""Edits of what exists, on the tiny offline model in real Blender: a redrawn region changes only what it
was asked to (the EXR bit for bit outside its feathered edge), across the seam and at the zenith too."""

import importlib
from pathlib import Path

import bpy
import numpy as np
import pytest
import test_world_presets
from scene_helpers import new_scene, read_exr, write_png

TINY = {"steps": 2, "seed": 3, "device": "cpu"}
tiny_preset = test_world_presets.preset  # the fixture: a tiny 360 preset in the Hugging Face cache
HEIGHT, WIDTH = 64, 128  # the smallest world a model draws


@pytest.fixture(scope="module")
def gen(addon):
    class Modules:
        worker = importlib.import_module(f"{addon.__name__}.generation.engine.worker")
        errors = importlib.import_module(f"{addon.__name__}.generation.errors")
        edits = importlib.import_module(f"{addon.__name__}.generation.engine.edits")
        request = importlib.import_module(f"{addon.__name__}.generation.engine.request")
        decoding = importlib.import_module(f"{addon.__name__}.generation.engine.decoding")
        tiled_vae = importlib.import_module(f"{addon.__name__}.generation.engine.tiled_vae")

    return Modules


def world_exr(world) -> Path:
    return Path(bpy.path.abspath(world.node_tree.nodes["Promptscape Environment"].image.filepath))


@pytest.fixture(scope="module")
def made_world(api, tiny_sd):
    """A 128x64 world made by Promptscape (its EXR is the input every edit starts from)."""
    world = api.generate_world(
        "a valley", scene=new_scene(), model=str(tiny_sd), width=WIDTH, height=HEIGHT, poles="off", **TINY
    )
    return {"world": world, "exr": world_exr(world)}


@pytest.fixture()
def source_world(api, made_world):
    """(World, its EXR): the made world, or after a test opened another file (which removes it) the same
    EXR applied again."""
    try:
        world = made_world["world"]
        assert world.name
    except ReferenceError:
        world = made_world["world"] = api.world_from_image(str(made_world["exr"]), scene=new_scene())
    return world, world_exr(world)


def degrees_from(yaw, pitch):
    """Great-circle distance (haversine) of every pixel centre of the 128x64 world from (yaw, pitch)."""
    lat = np.radians(90 - (np.arange(HEIGHT) + 0.5) * 180 / HEIGHT)[:, None]
    lon = np.radians(180 - (np.arange(WIDTH) + 0.5) * 360 / WIDTH)[None, :]
    p, y = np.radians(pitch), np.radians(yaw)
    a = np.sin((lat - p) / 2) ** 2 + np.cos(lat) * np.cos(p) * np.sin((lon - y) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


@pytest.mark.parametrize(
    "yaw,pitch,angle",
    [(0, 0, 25), (180, 10, 25), (30, 80, 20)],
    ids=["middle", "across-the-seam", "touching-the-zenith"],
)
def test_a_redrawn_region_leaves_the_rest_bit_for_bit(api, tiny_sd, source_world, yaw, pitch, angle):
    source, source_path = source_world
    scene = new_scene()
    world = api.inpaint_world(
        source, "a castle on a hill", scene=scene, model=str(tiny_sd), yaw=yaw, pitch=pitch, angle=angle,
        **TINY,
    )  # fmt: skip
    assert scene.world == world and world != source
    before, after = read_exr(source_path), read_exr(world_exr(world))
    assert after.shape == before.shape == (HEIGHT, WIDTH, 3)
    distance = degrees_from(yaw, pitch)
    # The feather reaches a sixth of the radius, at least two pixels (2.8° each here), beyond the edge.
    outside = distance > angle + max(angle / 6, 2 * 180 / HEIGHT) + 1e-6
    assert outside.sum() > 0.5 * outside.size
    assert np.array_equal(after[outside].view(np.uint32), before[outside].view(np.uint32))
    inside = distance <= angle
    assert inside.any() and not np.array_equal(after[inside], before[inside])
    if yaw == 180:
        assert inside[:, 0].any() and inside[:, -1].any()
    if pitch + angle >= 90:
        assert inside[0].all()
    record = dict(world["promptscape"])
    assert record["mode"] == "inpaint" and record["prompt"] == "a castle on a hill"
    assert float(record["region_yaw_deg"]) == yaw and float(record["region_angle_deg"]) == angle
    assert record["source_image"] == str(source_path) and record["width"] == str(WIDTH)


def test_a_painted_mask_redraws_only_its_white(api, tiny_sd, source_world, tmp_path):
    _, source_path = source_world
    mask = np.zeros((HEIGHT, WIDTH, 3))
    mask[20:26, 10:20] = 1.0
    path = write_png(tmp_path / "mask.png", mask)
    world = api.inpaint_world(
        str(source_path), "a lake", scene=new_scene(), model=str(tiny_sd), mask=path, **TINY
    )
    before, after = read_exr(source_path), read_exr(world_exr(world))
    black = mask[..., 0] == 0
    assert np.array_equal(after[black].view(np.uint32), before[black].view(np.uint32))
    assert not np.array_equal(after[~black], before[~black])
    assert world["promptscape"]["mask"] == str(path.resolve())


def test_a_plain_panorama_keeps_its_converted_radiance_outside(api, tiny_sd, tmp_path):
    rng = np.random.default_rng(0)
    png = write_png(tmp_path / "plain.png", 0.2 + 0.6 * rng.random((HEIGHT, WIDTH, 3)))
    converted = read_exr(world_exr(api.world_from_image(str(png), scene=new_scene())))
    world = api.inpaint_world(str(png), "a tower", scene=new_scene(), model=str(tiny_sd), yaw=-90, **TINY)
    after = read_exr(world_exr(world))
    outside = degrees_from(-90, 0) > 20 + 2 * 180 / HEIGHT + 1e-6
    ratio = after[outside] / converted[outside]
    assert np.abs(ratio / ratio.mean() - 1).max() < 1e-6  # one exposure factor at most


def test_bad_regions_are_refused_in_words_and_the_scene_kept(api, tiny_sd, source_world, tmp_path):
    source, _ = source_world
    scene = new_scene()
    scene.world = source
    with pytest.raises(api.PromptscapeError, match="no size"):
        api.inpaint_world(source, "x", scene=scene, model=str(tiny_sd), angle=0, **TINY)
    black = write_png(tmp_path / "black.png", np.zeros((HEIGHT, WIDTH, 3)))
    with pytest.raises(api.PromptscapeError, match="black everywhere"):
        api.inpaint_world(source, "x", scene=scene, model=str(tiny_sd), mask=black, **TINY)
    with pytest.raises(api.PromptscapeError, match="not both"):
        api.inpaint_world(source, "x", scene=scene, model=str(tiny_sd), mask=black, yaw=3, **TINY)
    with pytest.raises(api.PromptscapeError, match="angle must be"):
        api.inpaint_world(source, "x", scene=scene, model=str(tiny_sd), angle=80, **TINY)
    assert scene.world == source
    with pytest.raises(api.PromptscapeError, match="no world to edit"):
        api.inpaint_world(None, "x", scene=new_scene(), model=str(tiny_sd), **TINY)


@pytest.mark.parametrize("edit", ["inpaint_world", "remix_world", "world_from_photo"])
def test_cancel_within_a_step_leaves_the_scene(api, tiny_sd, source_world, worker, tmp_path, edit):
    source, _ = source_world
    scene = new_scene()
    scene.world = source
    steps = []

    def cancel_at_first_step(job, step):
        steps.append(step)
        job.cancel()

    worker.step_hook = cancel_at_first_step
    start = api.inpaint_world if edit == "inpaint_world" else api.remix_world
    given = source
    if edit == "world_from_photo":
        start, given = api.world_from_photo, write_png(tmp_path / "photo.png", np.full((64, 64, 3), 0.4))
    options = {"remix_world": {"remix_strength": 1.0}, "world_from_photo": {"width": WIDTH}}.get(edit, {})
    options.update(TINY, steps=4)
    generation = start(given, "x", scene=scene, model=str(tiny_sd), wait=False, **options)
    with pytest.raises(api.PromptscapeError, match="cancel"):
        generation.result(timeout=120)
    assert generation.state == "cancelled" and scene.world == source and steps == [1]


def test_remix_at_strength_zero_is_world_from_image(api, source_world):
    source, source_path = source_world
    kept = api.remix_world(source, "ignored", remix_strength=0, scene=new_scene())
    converted = api.world_from_image(str(source_path), scene=new_scene())
    assert np.array_equal(read_exr(world_exr(kept)), read_exr(world_exr(converted)))
    assert kept["promptscape"]["mode"] == "remix" and kept["promptscape"]["remix_strength"] == "0"


def test_material_remix_at_strength_zero_is_material_from_image(api, tmp_path):
    from PIL import Image

    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    png = write_png(tmp_path / "bricks.png", np.random.default_rng(1).random((64, 64, 3)))
    names = ("Albedo", "Normal", "Height")

    def maps(made):
        nodes = made.node_tree.nodes
        return [
            np.asarray(Image.open(bpy.path.abspath(nodes[f"Promptscape {n}"].image.filepath))) for n in names
        ]

    kept = api.remix_material(str(png), "ignored", remix_strength=0, objects=[cube])
    record, remixed = dict(kept["promptscape"]), maps(kept)
    converted = api.material_from_image(str(png), objects=[cube])
    for name, a, b in zip(names, remixed, maps(converted), strict=True):
        assert np.array_equal(a, b), name
    assert record["mode"] == "remix" and record["remix_strength"] == "0"


def test_the_same_seed_gives_the_same_remix(api, tiny_sd, source_world):
    source, _ = source_world
    first, second = (
        api.remix_world(source, "autumn", remix_strength=0.5, scene=new_scene(), model=str(tiny_sd), **TINY)
        for _ in range(2)
    )  # poles="repair" (the default): the remix's poles are redrawn as a generation's
    a, b = read_exr(world_exr(first)), read_exr(world_exr(second))
    assert world_exr(first) != world_exr(second) and np.array_equal(a, b)
    assert not np.array_equal(a, read_exr(world_exr(source)))
    assert first["promptscape"]["remix_strength"] == "0.5" and first["promptscape"]["mode"] == "remix"
    assert first["promptscape"]["poles"] == "repair" and "poles_memory_plan" in first["promptscape"]


def test_a_remix_changes_more_with_more_strength(gen, tiny_sd):
    """Measured in latent space, from the input's latents (a random-weight model's decoded output cannot
    show it: its images are all far from the input)."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd)
    y, x = np.mgrid[0:64, 0:64] / 64
    texture = np.stack(
        [0.5 + 0.3 * np.sin(2 * np.pi * x), 0.5 + 0.3 * np.cos(2 * np.pi * y), 0.4 + 0 * x], -1
    )
    known = gen.decoding.encode_image(pipe, texture.astype(np.float32), gen.tiled_vae.Tiling(64, True, True))
    request = gen.request.GenerationRequest("a wall", steps=4, guidance=7.0, width=64, height=64)
    change = []
    for strength in (0.25, 0.5, 0.75, 1.0):
        generator = torch.Generator().manual_seed(2)
        with torch.no_grad():
            latents = gen.edits.remix_latents(pipe, known, request, strength, generator)
        change.append(float((latents - known).abs().mean()))
    assert change == sorted(change) and change[0] < 0.5 * change[-1], change


def test_a_photo_grows_into_a_world_and_keeps_its_pixels(api, tiny_sd, tmp_path):
    """A checkerboard photo at yaw 30°, pitch 10°, 60° wide: inside its footprint the world is the photo as
    an independent pinhole projection (written here) samples it, up to one exposure factor."""
    yaw, pitch, fov, photo_w, photo_h = 30.0, 10.0, 60.0, 96, 64
    px, py = np.meshgrid(np.arange(photo_w), np.arange(photo_h))
    photo = np.where(((px // 12 + py // 12) % 2)[..., None] == 1, [0.8, 0.7, 0.6], [0.2, 0.3, 0.25])
    path = write_png(tmp_path / "photo.png", photo)
    photo = np.floor(photo * 255 + 0.5) / 255  # as the 8-bit file holds it
    height, width = 128, 256
    world = api.world_from_photo(
        str(path), "a beach", fov=fov, yaw=yaw, pitch=pitch, width=width, height=height, model=str(tiny_sd),
        poles="off", **TINY,
    )  # fmt: skip
    radiance = read_exr(world_exr(world))
    # The pinhole: world direction -> camera (forward, left, up) -> photo pixel, bilinear.
    lat = np.radians(90 - (np.arange(height) + 0.5) * 180 / height)[:, None]
    lon = np.radians(180 - (np.arange(width) + 0.5) * 360 / width)[None, :]
    d = np.stack(np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), -1)
    y, p = np.radians(yaw), np.radians(pitch)
    forward = np.array([np.cos(p) * np.cos(y), np.cos(p) * np.sin(y), np.sin(p)])
    left = np.array([-np.sin(y), np.cos(y), 0.0])
    up = np.cross(forward, left)
    focal = photo_w / 2 / np.tan(np.radians(fov) / 2)
    depth = d @ forward
    x = photo_w / 2 - (d @ left) / depth * focal - 0.5
    v = photo_h / 2 - (d @ up) / depth * focal - 0.5
    interior = (depth > 0) & (x > 8) & (x < photo_w - 9) & (v > 8) & (v < photo_h - 9)
    assert interior.sum() > 500
    x0, v0 = np.floor(x[interior]).astype(int), np.floor(v[interior]).astype(int)
    fx, fv = (x[interior] - x0)[:, None], (v[interior] - v0)[:, None]
    sampled = (photo[v0, x0] * (1 - fx) + photo[v0, x0 + 1] * fx) * (1 - fv) + (
        photo[v0 + 1, x0] * (1 - fx) + photo[v0 + 1, x0 + 1] * fx
    ) * fv
    linear = np.where(sampled <= 0.04045, sampled / 12.92, ((sampled + 0.055) / 1.055) ** 2.4)
    ratio = radiance[interior] / linear
    assert np.abs(ratio / ratio.mean() - 1).max() < 1e-4
    outside = depth < 0
    assert radiance[outside].std() > 0  # the rest is painted
    record = dict(world["promptscape"])
    assert record["mode"] == "world_from_photo" and float(record["photo_fov_deg"]) == fov
    assert float(record["photo_yaw_deg"]) == yaw and record["photo"] == str(path.resolve())


def test_bad_photos_are_refused_in_words(api, tiny_sd, tmp_path):
    scene = new_scene()
    small = write_png(tmp_path / "small.png", np.full((40, 80, 3), 0.5))
    with pytest.raises(api.PromptscapeError, match="at least 64 pixels"):
        api.world_from_photo(str(small), "x", scene=scene, model=str(tiny_sd), **TINY)
    photo = write_png(tmp_path / "photo.png", np.full((64, 96, 3), 0.5))
    with pytest.raises(api.PromptscapeError, match="fov must be a number from 10 to 170"):
        api.world_from_photo(str(photo), "x", fov=175, scene=scene, model=str(tiny_sd), **TINY)
    with pytest.raises(api.PromptscapeError, match="remix_strength must be a number from 0 to 1"):
        api.remix_world(str(photo), "x", remix_strength=1.5, scene=scene, model=str(tiny_sd), **TINY)
    assert scene.world is None


def test_the_command_line_and_the_operators_take_the_same_names(
    cli, addon, tiny_sd, source_world, tmp_path, capfd, fresh_file
):
    import json

    options = importlib.import_module(addon.__name__ + ".generation.options")
    _, source_path = source_world
    for kind in options.EDITS:
        properties = getattr(bpy.ops.promptscape, kind).get_rna_type().properties.keys()
        assert {option.name for option in options.for_kind(kind)} <= set(properties), kind
    out = tmp_path / "out.blend"
    argv = [
        "inpaint-world",
        str(source_path),
        "a castle",
        "--yaw",
        "30",
        "--angle",
        "15",
        "--model",
        str(tiny_sd),
    ]
    argv += ["--steps", "2", "--seed", "3", "--device", "cpu", "--output", str(out), "--json"]
    code = cli.main(argv)
    captured = capfd.readouterr()
    assert code == 0, captured.err
    (result,) = [json.loads(line) for line in captured.out.splitlines()]
    assert result["kind"] == "world" and result["seed"] == 3
    bpy.ops.wm.open_mainfile(filepath=str(out))
    record = bpy.context.scene.world["promptscape"]
    assert record["mode"] == "inpaint" and record["region_yaw_deg"] == "30"
    argv = ["remix-world", "WORLD", "autumn", "--remix-strength", "2", "--blend", str(out), "--save"]
    assert cli.main(argv) == 1 and "remix_strength must be a number from 0 to 1" in capfd.readouterr().err
    scene = new_scene()
    result = bpy.ops.promptscape.remix_world(
        prompt="x", remix_strength=0.0, filepath=str(source_path), model=str(tiny_sd)
    )
    assert result == {"FINISHED"} and scene.world["promptscape"]["mode"] == "remix"


def test_an_edit_is_made_again_from_its_record(api, addon, tiny_sd, source_world):
    edits = importlib.import_module(addon.__name__ + ".flow.edits")
    source, _ = source_world
    first = api.inpaint_world(
        source, "a ruin", scene=new_scene(), model=str(tiny_sd), yaw=-60, angle=12, **TINY
    )
    kind, path, prompt, options = edits.recorded_edit(dict(first["promptscape"]))
    assert (kind, prompt, options["yaw"], options["angle"], options["seed"]) == (
        "inpaint_world",
        "a ruin",
        -60,
        12,
        3,
    )
    again = getattr(api, kind)(path, prompt, scene=new_scene(), **options)
    assert np.array_equal(read_exr(world_exr(first)), read_exr(world_exr(again)))
    scene = new_scene()
    scene.world = first
    with bpy.context.temp_override(scene=scene):
        assert bpy.ops.promptscape.use_settings(key=-1) == {"FINISHED"}
    assert scene.promptscape.prompt == "a ruin" and scene.promptscape.seed == 3


def test_the_remix_button_of_a_history_result(api, addon, tiny_sd, source_world):
    runner = importlib.import_module(addon.__name__ + ".flow.runner")
    _, source_path = source_world
    scene = new_scene()
    api.world_from_image(str(source_path), scene=scene)
    entry = next(entry for entry in runner.history() if entry.kind == "world")
    assert bpy.ops.promptscape.remix_world(key=entry.key, prompt="x", remix_strength=0.0) == {"FINISHED"}
    assert scene.world["promptscape"]["source_image"] == str(entry.outputs.exr)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["zimage", "flux2-klein", "qwen-image"])
def test_a_region_redrawn_by_each_transformer_family(api, tiny_transformers, source_world, family):
    source, source_path = source_world
    model = str(tiny_transformers[family])
    world = api.inpaint_world(source, "a tower", scene=new_scene(), model=model, yaw=10, angle=20, **TINY)
    before, after = read_exr(source_path), read_exr(world_exr(world))
    outside = degrees_from(10, 0) > 20 + 2 * 180 / HEIGHT + 1e-6
    assert np.array_equal(after[outside].view(np.uint32), before[outside].view(np.uint32))
    assert not np.array_equal(after[~outside], before[~outside])


@pytest.mark.slow
@pytest.mark.parametrize("family", ["zimage", "flux2-klein", "qwen-image"])
def test_a_remix_by_each_transformer_family(api, tiny_transformers, source_world, family):
    source, source_path = source_world
    model = str(tiny_transformers[family])
    first, second = (
        api.remix_world(
            source, "autumn", scene=new_scene(), model=model, poles="off", remix_strength=0.5, **TINY
        )
        for _ in range(2)
    )
    a, b = read_exr(world_exr(first)), read_exr(world_exr(second))
    assert np.array_equal(a, b) and not np.array_equal(a, read_exr(source_path))


def test_a_photo_without_a_field_of_view_takes_its_exif(api, tiny_sd, tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 50  # a "normal" lens: 50 mm equivalent
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (96, 64), (120, 130, 140)).save(path, exif=exif)
    world = api.world_from_photo(
        str(path), "a field", scene=new_scene(), model=str(tiny_sd), width=WIDTH, **TINY
    )
    across = 43.267 * 96 / np.hypot(96, 64)
    assert float(world["promptscape"]["photo_fov_deg"]) == pytest.approx(
        np.degrees(2 * np.arctan(across / 100)), abs=1e-3
    )


@pytest.mark.slow
def test_sdxl_redraws_a_region_and_remixes(api, tiny_sdxl, source_world):
    source, source_path = source_world
    world = api.inpaint_world(
        source, "a tower", scene=new_scene(), model=str(tiny_sdxl), yaw=100, angle=15, **TINY
    )
    before, after = read_exr(source_path), read_exr(world_exr(world))
    outside = degrees_from(100, 0) > 15 + 2 * 180 / HEIGHT + 1e-6
    assert np.array_equal(after[outside].view(np.uint32), before[outside].view(np.uint32))
    assert not np.array_equal(after[~outside], before[~outside])
    remixed = api.remix_world(source, "autumn", scene=new_scene(), model=str(tiny_sdxl), poles="off", **TINY)
    assert not np.array_equal(read_exr(world_exr(remixed)), before)


def test_a_world_remix_takes_the_360_preset_a_region_does_not(api, tiny_preset, tiny_sd, source_world):
    source, preset = source_world[0], tiny_preset
    world = api.remix_world(source, "autumn", remix_strength=0.5, scene=new_scene(), poles="off", **TINY)
    record = world["promptscape"]
    assert record["model"] == preset.base and record["loras"] == f"{preset.repo_id}:1"
    assert record["prompt"] == "qxj 360 panorama, autumn" and record["width"] == str(
        WIDTH
    )  # the input's size
    region = api.inpaint_world(source, "a tower", scene=new_scene(), model=str(tiny_sd), angle=10, **TINY)
    assert region["promptscape"]["loras"] == ""


@pytest.mark.slow
@pytest.mark.parametrize("family", ["zimage", "flux2-klein", "qwen-image"])
def test_a_photo_world_by_each_transformer_family_keeps_the_photo(api, tiny_transformers, tmp_path, family):
    """Their inpainting pipelines put the photo back at every step, so the world wraps by periodic rotary
    positions instead of rolled latents: the photo's footprint is kept (one exposure factor), the rest
    painted, and the same seed gives the same world."""
    photo = np.where(
        ((np.indices((64, 96)).sum(axis=0) // 12) % 2)[..., None] == 1, [0.8, 0.7, 0.6], [0.2, 0.3, 0.2]
    )
    path = write_png(tmp_path / "photo.png", photo)
    options = {
        "fov": 60.0,
        "width": 128,
        "height": 64,
        "poles": "off",
        "model": str(tiny_transformers[family]),
    }
    worlds = [
        api.world_from_photo(str(path), "a beach", scene=new_scene(), **options, **TINY) for _ in range(2)
    ]
    first, second = (read_exr(world_exr(world)) for world in worlds)
    assert np.array_equal(first, second) and np.isfinite(first).all()
    ahead = first[24:40, 58:70]  # yaw 0 looks at +X: the middle of the panorama, inside the photo
    assert ahead.std() > 0 and first[:, :16].std() > 0  # the photo's checks, and the painted rest
    assert worlds[0]["promptscape"]["mode"] == "world_from_photo"
