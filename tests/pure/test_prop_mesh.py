"""A prop's geometry against analytic truth: marching cubes of a sphere, a torus and a box.

Each shape is a signed distance sampled on a grid; the mesh must lie within one voxel of the true surface
both ways (Hausdorff), be closed (every edge in two faces), wind outward, enclose the true volume, and after
placing stand on the ground at the asked size.
"""

import numpy as np
import pytest
from conftest import source_module

pytest.importorskip("skimage")
cKDTree = pytest.importorskip("scipy.spatial").cKDTree

RESOLUTION = 64
LOW, HIGH = -1.0, 1.0
VOXEL = (HIGH - LOW) / (RESOLUTION - 1)


@pytest.fixture(scope="module")
def prop_mesh():
    return source_module("imaging.prop_mesh")


def sphere(p):
    return np.linalg.norm(p, axis=-1) - 0.6


def torus(p):
    ring = np.linalg.norm(p[..., :2], axis=-1) - 0.55
    return np.hypot(ring, p[..., 2]) - 0.25


def box(p):
    q = np.abs(p) - [0.5, 0.3, 0.7]
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)


def surface_samples(name, count=4000, seed=0):
    """Points on the true surface."""
    rng = np.random.default_rng(seed)
    if name == "sphere":
        d = rng.normal(size=(count, 3))
        return 0.6 * d / np.linalg.norm(d, axis=1, keepdims=True)
    if name == "torus":
        u, v = rng.uniform(0, 2 * np.pi, (2, count))
        r = 0.55 + 0.25 * np.cos(v)
        return np.stack([r * np.cos(u), r * np.sin(u), 0.25 * np.sin(v)], axis=1)
    half = np.array([0.5, 0.3, 0.7])
    points = rng.uniform(-half, half, (count, 3))
    axis = rng.integers(0, 3, count)
    points[np.arange(count), axis] = np.where(rng.random(count) < 0.5, -1, 1) * half[axis]
    return points


SHAPES = {"sphere": (sphere, 4 / 3 * np.pi * 0.6**3), "torus": (torus, 2 * np.pi**2 * 0.55 * 0.25**2),
          "box": (box, 1.0 * 0.6 * 1.4)}  # fmt: skip


def grid_points():
    axis = np.linspace(LOW, HIGH, RESOLUTION)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_marching_cubes_finds_the_true_surface_closed_and_outward(prop_mesh, name):
    distance, volume = SHAPES[name]
    density = -distance(grid_points())  # inside is positive, as a density above its level
    vertices, faces = prop_mesh.extract_surface(density, 0.0, LOW, HIGH)
    to_truth = np.abs(distance(vertices)).max()
    from_truth = cKDTree(vertices).query(surface_samples(name))[0].max()
    assert to_truth <= VOXEL and from_truth <= VOXEL, (to_truth, from_truth, VOXEL)
    assert prop_mesh.is_closed(faces) and prop_mesh.is_consistently_oriented(faces)
    normals = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    centres = vertices[faces].mean(axis=1)
    step = 1e-3 * normals / np.linalg.norm(normals, axis=1, keepdims=True)
    assert (distance(centres + step) > distance(centres - step)).mean() > 0.99  # normals point outwards
    assert prop_mesh.signed_volume(vertices, faces) == pytest.approx(volume, rel=0.03)


def test_an_object_touching_the_grid_is_still_closed(prop_mesh):
    density = -(np.linalg.norm(grid_points(), axis=-1) - 1.2)  # a ball larger than the grid
    vertices, faces = prop_mesh.extract_surface(density, 0.0, LOW, HIGH)
    assert prop_mesh.is_closed(faces) and prop_mesh.signed_volume(vertices, faces) > 0
    assert vertices.min() >= LOW - 1e-6 and vertices.max() <= HIGH + 1e-6


def test_a_grid_without_an_object_fails_in_words(prop_mesh):
    errors = source_module("errors")
    with pytest.raises(errors.GenerationFailed, match="the shape model found no object in the image"):
        prop_mesh.extract_surface(np.full((8, 8, 8), 0.3, np.float32), 25.0, LOW, HIGH)


def test_placing_scales_the_largest_side_and_stands_on_the_ground(prop_mesh):
    vertices, _ = prop_mesh.extract_surface(-box(grid_points()), 0.0, LOW, HIGH)
    placed = prop_mesh.place(prop_mesh.turn_front(vertices), 2.5, (1.0, -2.0, 0.5))
    low, high = placed.min(axis=0), placed.max(axis=0)
    assert (high - low).max() == pytest.approx(2.5, rel=1e-5)
    assert low[2] == pytest.approx(0.5, abs=1e-5)
    assert (low[:2] + high[:2]) / 2 == pytest.approx([1.0, -2.0], abs=1e-5)
    # The quarter turn: the box's 0.6 m side (y) now runs along x, its 1.0 m side (x) along y.
    assert (high - low) / (high - low).max() == pytest.approx([0.6 / 1.4, 1.0 / 1.4, 1.0], abs=2 * VOXEL)


def test_the_measures_see_an_open_or_misoriented_mesh(prop_mesh):
    vertices, faces = prop_mesh.extract_surface(-sphere(grid_points()), 0.0, LOW, HIGH)
    assert not prop_mesh.is_closed(faces[1:])
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not prop_mesh.is_consistently_oriented(flipped)
    assert prop_mesh.signed_volume(vertices, faces[:, ::-1]) < 0


def test_the_mesh_file_round_trips_without_pickle_and_refuses_bad_arrays(prop_mesh, tmp_path):
    files = source_module("imaging.prop_files")
    errors = source_module("errors")
    vertices, faces = prop_mesh.extract_surface(-sphere(grid_points()), 0.0, LOW, HIGH)
    colours = np.full(vertices.shape, 0.5, np.float32)
    mesh = prop_mesh.PropMesh(vertices.astype(np.float32), faces.astype(np.int32), colours)
    path = files.write_mesh(tmp_path, "prop", mesh)
    back = files.read_mesh(path)
    assert np.array_equal(back.vertices, mesh.vertices) and np.array_equal(back.faces, mesh.faces)
    np.savez(tmp_path / "bad.npz", vertices=mesh.vertices, faces=mesh.faces + len(vertices), colours=colours)
    with pytest.raises(errors.GenerationFailed, match="outside"):
        files.read_mesh(tmp_path / "bad.npz")
    np.savez(tmp_path / "pickled.npz", vertices=np.array([object()]), faces=mesh.faces, colours=colours)
    with pytest.raises(errors.GenerationFailed, match="cannot be read"):
        files.read_mesh(tmp_path / "pickled.npz")
