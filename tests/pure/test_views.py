"""Perspective views of a panorama, their inverse and regions, against truth written here independently:
a pinhole camera built from rotation matrices, and Blender's equirectangular mapping from its formula."""

import numpy as np
import pytest


def rotation(yaw_deg, pitch_deg):
    """Camera-to-world rotation of an upright camera: columns are its forward, left and up axes. Built as
    a turn about Z by yaw after a tilt about the camera's Y by -pitch (independent of views.View.axes)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    turn = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    tilt = np.array([[np.cos(p), 0, -np.sin(p)], [0, 1, 0], [np.sin(p), 0, np.cos(p)]])
    return turn @ tilt


def pinhole_ray(x, y, yaw, pitch, fov, width, height):
    """World direction of photo point (x right, y down, in pixels from its top-left corner)."""
    focal = (width / 2) / np.tan(np.radians(fov) / 2)
    camera = np.stack([np.full_like(x, focal), -(x - width / 2), -(y - height / 2)], axis=-1)
    return camera @ rotation(yaw, pitch).T


def pinhole_point(d, yaw, pitch, fov, width, height):
    """Photo point (x, y) in pixels from the top-left corner where world direction d lands."""
    focal = (width / 2) / np.tan(np.radians(fov) / 2)
    camera = d @ rotation(yaw, pitch)
    return width / 2 - camera[..., 1] / camera[..., 0] * focal, height / 2 - camera[..., 2] / camera[
        ..., 0
    ] * focal


def equirect_point(d, height, width):
    """Blender's Environment Texture mapping: u = 0.5 - atan2(y, x) / 2π, v = 0.5 + asin(z) / π, as
    (row, column) in pixel units from the top-left corner (pixel centres at +0.5)."""
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    u = (0.5 - np.arctan2(d[..., 1], d[..., 0]) / (2 * np.pi)) % 1.0
    v = 0.5 + np.arcsin(d[..., 2]) / np.pi
    return (1 - v) * height, u * width


def pixel_latlon(height, width):
    lat = np.radians(90 - (np.arange(height) + 0.5) * 180 / height)[:, None]
    lon = np.radians(180 - (np.arange(width) + 0.5) * 360 / width)[None, :]
    return lat, lon


def great_circle_deg(height, width, yaw, pitch):
    """Haversine distance of every pixel centre from (yaw, pitch): another way to the same angle."""
    lat, lon = pixel_latlon(height, width)
    p, y = np.radians(pitch), np.radians(yaw)
    a = np.sin((lat - p) / 2) ** 2 + np.cos(lat) * np.cos(p) * np.sin((lon - y) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


@pytest.mark.parametrize(
    "yaw,pitch,fov", [(0, 0, 60), (90, 0, 90), (-135, 30, 45), (200, -60, 100), (10, 90, 70)]
)
def test_view_directions_are_the_pinhole_rays(views, yaw, pitch, fov):
    view = views.View(yaw, pitch, fov, 40, 30)
    x, y = np.meshgrid(np.arange(40) + 0.5, np.arange(30) + 0.5)
    truth = pinhole_ray(x, y, yaw, pitch, fov, 40, 30)
    truth /= np.linalg.norm(truth, axis=-1, keepdims=True)
    np.testing.assert_allclose(view.directions(), truth, atol=1e-12)
    rows, cols, inside = view.pixel_of(truth)
    assert inside.all()
    np.testing.assert_allclose(rows, y - 0.5, atol=1e-9)
    np.testing.assert_allclose(cols, x - 0.5, atol=1e-9)


def test_a_view_at_yaw_90_is_centred_on_plus_y(views):
    np.testing.assert_allclose(views.direction(90, 0), [0, 1, 0], atol=1e-12)
    height, width = 64, 128
    pano = views.equirect_directions(height, width)  # each pixel holds its own direction
    seen = views.equirect_to_view(pano, views.View(90, 0, 60, 33, 33))
    centre = seen[16, 16] / np.linalg.norm(seen[16, 16])
    np.testing.assert_allclose(centre, [0, 1, 0], atol=0.01)
    # Facing +Y with +Z up, +X is on the right (as in the panorama: +X is a quarter turn right of +Y).
    assert seen[16, -1, 0] > 0.4 and seen[16, 0, 0] < -0.4 and seen[0, 16, 2] > 0.4
    mask = views.region_mask(height, width, 90, 0, 10)
    rows, cols = np.nonzero(mask)
    assert rows.mean() == pytest.approx(height / 2 - 0.5) and cols.mean() == pytest.approx(width / 4 - 0.5)


def test_view_round_trip_keeps_a_smooth_panorama(views):
    height, width = 128, 256
    d = views.equirect_directions(height, width)
    pano = np.stack([0.5 + 0.3 * d[..., 0], 0.5 + 0.3 * d[..., 1] * d[..., 2], 0.4 + 0.3 * d[..., 2]], -1)
    view = views.View(30, 20, 70, 160, 120)
    back = views.view_to_equirect(np.zeros_like(pano), views.equirect_to_view(pano, view), view)
    inner = views.angular_distance(height, width, 30, 20) < 25
    assert np.abs(back - pano)[inner].max() < 0.01
    outside = views.view_footprint(view, height, width) == 0
    assert outside.any() and (back[outside] == 0).all()


def test_pasting_only_touches_the_weighted_pixels_bit_for_bit(views):
    rng = np.random.default_rng(3)
    pano = rng.random((32, 64, 3)).astype(np.float32) * 1e4
    weight = views.feathered_region(32, 64, 170, 10, 20)
    view = views.view_for_region(170, 10, 20 + views.feather_width(20, 32), 32)
    out = views.view_to_equirect(pano, np.zeros((view.height, view.width, 3), np.float32), view, weight)
    assert np.array_equal(out[weight == 0], pano[weight == 0])
    assert (out[weight == 1] == 0).all()


@pytest.mark.parametrize(
    "yaw,pitch,angle", [(0, 0, 20), (180, 5, 25), (-170, -20, 15), (40, 80, 15), (0, -90, 8)]
)
def test_region_is_the_pixels_within_the_angle(views, yaw, pitch, angle):
    height, width = 90, 180
    truth = great_circle_deg(height, width, yaw, pitch)
    mask = views.region_mask(height, width, yaw, pitch, angle)
    decided = np.abs(truth - angle) > 1e-6  # pixels exactly on the circle may go either way
    assert np.array_equal(mask[decided] == 1, (truth <= angle)[decided])
    assert mask.sum() > 0
    if abs(yaw) >= 170:  # across the seam: both edges hold region pixels
        assert mask[:, 0].any() and mask[:, -1].any()
    if pitch + angle >= 90:  # touching the zenith: the whole top row
        assert mask[0].all()
    weight = views.feathered_region(height, width, yaw, pitch, angle)
    assert (weight[mask == 1] == 1).all()
    feather = views.feather_width(angle, height)
    assert (weight[truth > angle + feather + 1e-6] == 0).all()
    assert ((weight > 0) & (weight < 1)).sum() > 0


def test_mask_centre_finds_the_cone(views):
    mask = views.region_mask(90, 180, -175, 30, 20)
    yaw, pitch, angle = views.mask_centre(mask)
    assert abs(((yaw + 175) + 180) % 360 - 180) < 1.5 and abs(pitch - 30) < 1.5
    assert 20 <= angle < 23
    assert views.mask_centre(np.zeros((90, 180)))[2] == 0


@pytest.mark.parametrize("yaw,pitch,fov", [(0, 0, 60), (-120, 25, 40), (170, -10, 90), (60, 75, 50)])
def test_a_checkerboard_photo_lands_where_a_pinhole_says(views, yaw, pitch, fov):
    """A photo pasted onto the canvas: every panorama pixel takes the photo's value at the point an
    independent pinhole projection gives, and the checker corners land within half a pixel."""
    height, width = 256, 512
    photo_w, photo_h, square = 96, 64, 8
    view = views.View(yaw, pitch, fov, photo_w, photo_h)
    # A photo whose pixels hold their own coordinates: bilinear sampling reproduces them exactly.
    px, py = np.meshgrid(np.arange(photo_w) + 0.5, np.arange(photo_h) + 0.5)
    coords = np.stack([px, py, np.zeros_like(px)], axis=-1)
    placed = views.view_to_equirect(np.full((height, width, 3), -1.0), coords, view)
    d = views.equirect_directions(height, width, np.float64)
    tx, ty = pinhole_point(d, yaw, pitch, fov, photo_w, photo_h)
    ahead = (d @ rotation(yaw, pitch)[:, 0]) > 0
    inside = ahead & (tx > 0.5) & (tx < photo_w - 0.5) & (ty > 0.5) & (ty < photo_h - 0.5)
    assert inside.sum() > 200
    assert np.abs(placed[inside][:, 0] - tx[inside]).max() < 1e-4
    assert np.abs(placed[inside][:, 1] - ty[inside]).max() < 1e-4
    outside = ~ahead | (tx < -0.5) | (tx > photo_w + 0.5) | (ty < -0.5) | (ty > photo_h + 0.5)
    assert (placed[outside] == -1).all()
    # A checkerboard: pixels well inside a square (by the pinhole) hold that square's colour.
    checker = ((px // square + py // square) % 2)[..., None] * np.ones(3)
    board = views.view_to_equirect(np.full((height, width, 3), 0.5), checker, view)
    edge_x, edge_y = (
        np.abs((tx + square / 2) % square - square / 2),
        np.abs((ty + square / 2) % square - square / 2),
    )
    clear = inside & (edge_x > 1) & (edge_y > 1)
    expected = (tx // square + ty // square) % 2
    assert np.array_equal(board[clear][:, 0], expected[clear])
    # The corners: each interior checker corner, projected by the pinhole, is where the pasted coordinates
    # say that photo point is, within half a panorama pixel.
    cx, cy = np.meshgrid(np.arange(square, photo_w, square), np.arange(square, photo_h, square))
    corners = pinhole_ray(cx.astype(float), cy.astype(float), yaw, pitch, fov, photo_w, photo_h)
    row, col = equirect_point(corners, height, width)
    for r, c, x, y in zip(row.ravel(), col.ravel(), cx.ravel(), cy.ravel(), strict=True):
        r0, c0 = int(np.floor(r - 0.5)), int(np.floor(c - 0.5))
        block = placed[r0 : r0 + 2, np.arange(c0, c0 + 2) % width]
        # Locate the photo point (x, y) in the 2x2 block of pasted coordinates (locally linear).
        fx = np.linalg.lstsq(
            np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], float),
            np.stack([block[..., 0].ravel(), block[..., 1].ravel()], -1),
            rcond=None,
        )[0]
        # Pasted coordinates as a linear function of (row, column) offset: solve for where they equal (x, y).
        jac = fx[:2].T
        offset = np.linalg.solve(jac, np.array([x, y]) - fx[2])
        found = np.array([r0 + 0.5, c0 + 0.5]) + offset
        assert abs(found[0] - r) < 0.5 and abs(((found[1] - c) + width / 2) % width - width / 2) < 0.5
