"""The projected-texture bake against analytic geometry: depth,, projection truth, occlusion, coverage."""

import numpy as np
import pytest
from conftest import source_module
from solids import colour_field, cube, seen_points, uv_sphere


@pytest.fixture(scope="module")
def pinhole():
    return source_module("imaging.cameras")


@pytest.fixture(scope="module")
def raster():
    return source_module("imaging.raster")


@pytest.fixture(scope="module")
def bake():
    return source_module("imaging.texture_bake")


def front_camera(pinhole, size=64, distance=5.0):
    """Blender's default camera lens (50 mm, 36 mm sensor) on the -Y axis looking at the origin."""
    world = pinhole.look_at((0.3, -distance, 1.2), (0.0, 0.0, 0.0))
    return pinhole.camera_from_lens(world, 50.0, 36.0, 24.0, "AUTO", size, size)


def painted_view(raster, bake, camera, mesh, colours=colour_field):
    """A View whose image shows `colours` of the point every pixel sees (black where nothing is)."""
    vertices, triangles = mesh[0], mesh[1]
    depth = raster.depth_map(camera, vertices, triangles)
    image = np.nan_to_num(colours(seen_points(camera, depth)))
    return bake.View(camera, image, depth)


def test_lens_matches_blenders_view_plane(pinhole):
    # 50 mm on a 36 mm sensor, 64 x 32: the image's right edge is 18/50 of the depth to the side.
    cam = pinhole.camera_from_lens(np.eye(4), 50.0, 36.0, 24.0, "AUTO", 64, 32)
    x, y, d = cam.project(np.array([[18 / 50 * 4.0, 0.0, -4.0], [0.0, 9 / 50 * 4.0, -4.0]]))
    assert np.allclose([x[0], y[0], d[0]], [64.0, 16.0, 4.0]) and np.allclose([x[1], y[1]], [32.0, 0.0])
    # Taller than wide: AUTO fits the sensor width to the height; shift moves by a fraction of that side.
    tall = pinhole.camera_from_lens(np.eye(4), 50.0, 36.0, 24.0, "AUTO", 32, 64, shift_x=0.25)
    x, y, _ = tall.project(np.array([[0.0, 18 / 50 * 4.0, -4.0]]))
    assert np.allclose([x[0], y[0]], [16.0 + 16.0, 0.0])


def test_depth_map_is_exact_on_a_cube(pinhole, raster):
    camera = front_camera(pinhole)
    depth = raster.depth_map(camera, *cube()[:2])
    # Analytic ray-box intersection (slab method) at every pixel centre, as planar depth.
    rays = camera.ray_directions()
    origin = camera.position
    with np.errstate(divide="ignore"):
        t1, t2 = (-1.0 - origin) / rays, (1.0 - origin) / rays
    near, far = np.minimum(t1, t2).max(-1), np.maximum(t1, t2).min(-1)
    forward = -camera.world[:3, 2]
    truth = np.where(near <= far, near * (rays @ forward), np.inf)
    assert np.array_equal(np.isfinite(depth), np.isfinite(truth))
    seen = np.isfinite(truth)
    assert seen.mean() > 0.1 and np.abs(depth[seen] - truth[seen]).max() < 1e-9


def test_control_image_is_normalised_inverse_depth(raster):
    depth = np.array([[2.0, 4.0], [np.inf, 8.0]])
    control = raster.control_image(depth)
    assert control[1, 0] == 0 and control[0, 0] == pytest.approx(1.0) and control[1, 1] == pytest.approx(0.1)
    # Affine in 1/depth between the nearest and the farthest.
    assert control[0, 1] == pytest.approx(0.1 + 0.9 * (1 / 4 - 1 / 8) / (1 / 2 - 1 / 8))


@pytest.mark.parametrize("shape", ["cube", "sphere"])
def test_one_view_paints_what_it_sees_with_its_colours(pinhole, raster, bake, shape):
    mesh = cube() if shape == "cube" else uv_sphere()
    camera = front_camera(pinhole, size=128)
    texels = bake.sample_texels(256, *mesh)
    result = bake.bake(texels, [painted_view(raster, bake, camera, mesh)])
    painted = result.painted
    to_camera = camera.position - texels.points
    cos = np.einsum("ij,ij->i", texels.normals, to_camera / np.linalg.norm(to_camera, axis=1, keepdims=True))
    error = np.abs(result.colour - colour_field(texels.points)).max(axis=1)
    # Bilinear lookup of a smooth field at 128 px: the error is interpolation only, largest at grazing
    # angles where a pixel spans much of the surface (measured on the sphere: mean 0.003, 99th percentile
    # 0.036 over all painted texels; 0.0005 and 0.008 where cos > 0.2).
    assert np.mean(error[painted]) < 0.005 and np.percentile(error[painted], 99) < 0.05
    squarely = painted & (cos > 0.2)
    assert np.mean(error[squarely]) < 0.001 and np.percentile(error[squarely], 99) < 0.01
    # Every texel facing the camera squarely enough and not hidden is painted; none facing away is.
    assert painted[cos > 0.2].mean() > 0.99 and not painted[cos < 0].any()


def test_an_occluded_texel_never_takes_the_occluders_colour(pinhole, raster, bake):
    back, front = cube(), cube(centre=(0.0, -2.0, 0.3), half=0.45)
    both = (np.concatenate([back[0], front[0]]), np.concatenate([back[1], front[1] + len(back[0])]))
    camera = front_camera(pinhole, size=96)
    depth = raster.depth_map(camera, *both)
    front_depth = raster.depth_map(camera, *front[:2])
    sees_front = np.isfinite(front_depth) & (front_depth <= depth)
    assert 0.02 < sees_front.mean() < 0.5
    red, green = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    image = np.where(sees_front[..., None], green, red) * np.isfinite(depth)[..., None]
    texels = bake.sample_texels(256, *back)
    result = bake.bake(texels, [bake.View(camera, image, depth)])
    assert result.painted.mean() > 0.05
    assert np.all(result.colour[result.painted] == red)  # not a trace of green, even at the edges
    # The texels the front cube hides (every pixel around where they project sees it) are left unpainted.
    x, y, _ = camera.project(texels.points)
    col, row = (
        np.clip(np.nan_to_num(x, nan=-1).astype(int), 1, 94),
        np.clip(np.nan_to_num(y, nan=-1).astype(int), 1, 94),
    )
    around = np.pad(sees_front, 1)
    surely_front = np.logical_and.reduce(
        [around[1 + dy : 97 + dy, 1 + dx : 97 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )
    hidden = surely_front[row, col] & (np.abs(x - col - 0.5) < 1) & (np.abs(y - row - 0.5) < 1)
    assert hidden.sum() > 100 and not result.painted[hidden].any()


@pytest.mark.parametrize("shape", ["cube", "sphere"])
def test_six_views_cover_the_object_and_the_rest_is_filled(pinhole, raster, bake, shape):
    mesh = cube() if shape == "cube" else uv_sphere()
    cameras = pinhole.views_around(front_camera(pinhole, size=64), (0, 0, 0), np.sqrt(3.0), 6)
    texels = bake.sample_texels(128, *mesh)
    result = bake.bake(texels, [painted_view(raster, bake, camera, mesh) for camera in cameras])
    assert bake.coverage(result) >= 0.99
    filled = bake.fill_unpainted(texels.points, texels.normals, result.colour, result.painted)
    assert np.isfinite(filled).all() and filled.min() > 0.05
    image = bake.texture(texels, filled)
    assert image.shape == (128, 128, 3) and np.isfinite(image).all() and image.min() > 0.05


def test_unpainted_texels_are_filled_from_their_neighbours_in_3d(bake):
    # Texels on a sphere painted with a smooth field, except a cap: the cap takes the field's colour nearby.
    rng = np.random.default_rng(0)
    points = rng.normal(size=(20000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    truth = colour_field(points)
    painted = points[:, 2] < 0.9
    colour = np.where(painted[:, None], truth, np.nan)
    filled = bake.fill_unpainted(points, points, colour, painted)
    assert np.isfinite(filled).all() and np.array_equal(filled[painted], truth[painted].astype(np.float32))
    assert np.abs(filled[~painted] - truth[~painted]).mean() < 0.05


def test_texels_of_a_uv_map_lie_on_the_surface(bake):
    texels = bake.sample_texels(64, *uv_sphere(radius=2.0), matrix=np.diag([1.0, 1.0, 1.0, 1.0]))
    radius = np.linalg.norm(texels.points, axis=1)
    # The UV square is one island but for the poles' half-empty rows (1/16 of it), on the faceted sphere.
    assert len(texels.index) >= 0.93 * 64 * 64 and radius.max() <= 2.0 + 1e-9 and radius.min() > 2.0 * 0.98
    assert np.allclose(np.linalg.norm(texels.normals, axis=1), 1.0)


def test_curated_controlnets_agree_and_download_only_their_weights():
    catalog = source_module("setup.model_catalog")
    controlnets = source_module("engine.controlnets")
    assert {net.family: net.repo_id for net in catalog.CURATED_CONTROLNETS} == controlnets.CURATED
    assert all(net.licence for net in catalog.CURATED_CONTROLNETS)
    listing = [".gitattributes", "README.md", "config.json", "diffusion_pytorch_model.bin",
               "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
               "images/control.png"]  # fmt: skip
    assert catalog.controlnet_files(listing) == ["config.json", "diffusion_pytorch_model.safetensors"]


def test_a_later_view_is_shown_what_earlier_views_painted(pinhole, raster, bake):
    project = source_module("imaging.texture_project")
    vertices, triangles, uvs, normals = cube()
    surface = project.Surface("Cube", vertices, triangles, uvs, normals)
    # From high above one side: the top is seen squarely (cos 0.86) by this view and the next.
    first = pinhole.camera_from_lens(
        pinhole.look_at((0.3, -3.0, 5.0), (0, 0, 0)), 50.0, 36.0, 24.0, "AUTO", 64, 64
    )
    cameras = pinhole.views_around(first, (0, 0, 0), np.sqrt(3.0), 4)
    projection = project.Projection([surface], cameras, 256)
    projection.add(0, painted_view(raster, bake, first, (vertices, triangles)).image)
    picture, keep = projection.known(1)
    # The next view round (90 degrees on) shares the top with the first: it is kept, with the colours the
    # first view gave it; the side only the new view sees is left to draw.
    points = seen_points(cameras[1], projection.depth(1))
    assert 0.05 < keep.mean() < 0.5
    assert np.abs(picture[keep] - colour_field(points[keep])).mean() < 0.02
    assert (np.isfinite(projection.depth(1)) & ~keep).sum() > 200


@pytest.mark.parametrize("count", [1, 2, 4, 6, 8])
def test_views_around_frame_the_bounds_and_look_at_them(pinhole, count):
    first = front_camera(pinhole, size=64)
    cameras = pinhole.views_around(first, (0.5, 0.0, 0.2), 1.0, count)
    assert len(cameras) == count and cameras[0] is first
    for camera in cameras[1:]:
        # The centre projects to the middle of the frame, and the whole ball of radius 1 is in it.
        x, y, d = camera.project(np.array([[0.5, 0.0, 0.2]]))
        assert np.allclose([x[0], y[0]], [32.0, 32.0]) and d[0] > 1.0
        rng = np.random.default_rng(count)
        on_ball = rng.normal(size=(500, 3))
        on_ball = on_ball / np.linalg.norm(on_ball, axis=1, keepdims=True) + [0.5, 0.0, 0.2]
        x, y, _ = camera.project(on_ball)
        assert (x > 0).all() and (x < 64).all() and (y > 0).all() and (y < 64).all()
    directions = [camera.position - [0.5, 0.0, 0.2] for camera in cameras]
    assert len({tuple(np.round(d / np.linalg.norm(d), 3)) for d in directions}) == count  # all different
    with pytest.raises(ValueError, match="views must be one of"):
        pinhole.views_around(first, (0, 0, 0), 1.0, 3)


def test_two_objects_each_get_their_own_texture(pinhole, raster, bake):
    project = source_module("imaging.texture_project")
    left, right = cube(centre=(-1.5, 0.0, 0.0), half=0.8), cube(centre=(1.5, 0.0, 0.0), half=0.8)
    surfaces = [project.Surface(name, *mesh) for name, mesh in (("Left", left), ("Right", right))]
    camera = pinhole.camera_from_lens(
        pinhole.look_at((0.0, -9.0, 4.0), (0, 0, 0)), 50.0, 36.0, 24.0, "AUTO", 96, 96
    )
    projection = project.Projection(surfaces, [camera], 256)
    both = (np.concatenate([left[0], right[0]]), np.concatenate([left[1], right[1] + len(left[0])]))
    projection.add(0, painted_view(raster, bake, camera, both).image)
    textures = projection.textures()
    for k, texels in enumerate(projection.texels):
        seen = projection._weight[k] > 0.3
        colours = textures[k].reshape(-1, 3)[texels.index[seen]]
        assert seen.sum() > 500 and np.abs(colours - colour_field(texels.points[seen])).mean() < 0.01
    # Seen again from the same view, every pixel on either object shows its own colour.
    picture, keep = projection.known(0)
    points = seen_points(camera, projection.depth(0))
    assert keep.sum() > 300 and np.abs(picture[keep] - colour_field(points[keep])).mean() < 0.02
