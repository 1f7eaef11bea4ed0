"""Depth of a world merged from per-view estimates, against a room whose distances are known exactly."""

import numpy as np
import pytest

ROOM = {"x": (-3.0, 4.0), "y": (-2.5, 3.5), "z": (-1.6, 1.4)}  # walls, floor 1.6 m below the camera


def room_distance(directions: np.ndarray) -> np.ndarray:
    """Distance along each ray from the origin to the walls, floor or ceiling of ROOM."""
    best = np.full(directions.shape[:-1], np.inf)
    for axis, (low, high) in enumerate(ROOM.values()):
        component = directions[..., axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            for plane in (low, high):
                t = plane / component
                best = np.where((t > 0) & (t < best), t, best)
    return best


def distorted_estimate(projection, depth, seed=0):
    """Each view's true inverse depth, scaled and shifted at random per view, as a depth model answers."""
    rng = np.random.default_rng(seed)
    extent = depth.view_extent()

    def estimate(view, face):
        directions = projection.face_directions(face, view.shape[0], extent)
        forward = np.asarray(projection.FACES[face][0], dtype=np.float64)
        inverse_depth = 1.0 / (room_distance(directions) * (directions @ forward))
        return rng.uniform(0.3, 3.0) * inverse_depth + rng.uniform(-0.2, 0.2)

    return estimate


def test_merged_views_give_the_true_distance(projection, depth):
    pano = np.full((128, 256, 3), 0.5, np.float32)
    result = depth.estimate_world_depth(pano, distorted_estimate(projection, depth), 96, camera_height=1.6)
    truth = room_distance(projection.equirect_directions(128, 256))
    error = np.abs(result.distance / truth - 1.0)
    # Measured: median 0.001%, 99th percentile 0.23%, worst 1.8% (at a room edge); the camera height
    # alone sets the scale, no fit to the truth.
    assert np.median(error) < 0.01 and np.percentile(error, 99) < 0.02
    assert not result.sky.any()


def test_the_merged_map_wraps_and_is_continuous_at_the_poles(projection, depth, quality):
    pano = np.full((128, 256, 3), 0.5, np.float32)
    distance = depth.estimate_world_depth(pano, distorted_estimate(projection, depth, 3), 96).distance
    assert quality.seam_ratio(np.log(distance), axis=1).ratio <= 1.2
    for row in (distance[0], distance[-1]):
        assert row.std() / row.mean() < 0.01  # one direction, one distance


def test_the_sky_is_far(projection, depth):
    def estimate(view, face):
        directions = projection.face_directions(face, view.shape[0], depth.view_extent())
        forward = np.asarray(projection.FACES[face][0])
        floor = np.where(directions[..., 2] < -0.05, -directions[..., 2] / 1.6, 0.0)  # open sky above
        return floor / (directions @ forward).clip(1e-6)

    pano = np.full((64, 128, 3), 0.5, np.float32)
    result = depth.estimate_world_depth(pano, estimate, 64)
    top = result.sky[:20]
    assert top.all() and (result.distance[:20] == depth.SKY_DISTANCE).all()
    assert result.distance[-1].mean() == pytest.approx(1.6, rel=0.02)


def test_a_users_depth_map(depth, errors, projection):
    truth = room_distance(projection.equirect_directions(64, 128))
    metres = depth.depth_from_image(truth, metres=True)
    np.testing.assert_allclose(metres.distance, truth, rtol=1e-6)
    # 16-bit, near dark and far bright, in no particular unit: the ground below sets the scale.
    grey = np.round(truth / truth.max() * 65535) / 65535
    scaled = depth.depth_from_image(grey, metres=False, camera_height=1.6)
    np.testing.assert_allclose(scaled.distance, truth, rtol=0.01)
    with pytest.raises(errors.InvalidImage, match="2:1"):
        depth.depth_from_image(np.ones((64, 64)), metres=True)
