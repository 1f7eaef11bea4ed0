"""The distance of every pixel of a panorama, from a monocular depth model that sees perspective views.

A depth model is trained on ordinary photos, so it is shown the six faces of a cube, widened so that
neighbours overlap. Each view's answer is relative: an inverse depth known only up to a scale and a
shift. The views are aligned to each other on their overlaps (one linear least-squares problem), merged
into one equirectangular map of distance along each pixel's ray with weights that fall to zero at each
view's edge (so the map is continuous, wraps around the horizon and has no seam at the poles), given a
metric scale from the camera height (the ground straight below is `camera_height` away) and the sky is
put far away. numpy only, so the merge and a user's own depth map work without torch.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidImage
from .projection import FACES, equirect_directions, equirect_to_face, face_coordinates, sample_face

VIEW_DEG = 55.0  # each view's half-width: 110° views, 20° of overlap with each neighbour
SKY_DISTANCE = 90.0  # metres: far, yet inside a camera's default 100 m clip range
NADIR_Z = -0.9  # directions below about 64° down see the ground the camera stands on
ALIGN_GRID = (48, 96)  # directions the views are aligned on
PRIOR_WEIGHT = 0.002  # of the pull toward a = 1, b = 0, against the overlaps (see align_views)

# view image (S, S, 3) in [0, 1], face name -> relative inverse depth (S, S): larger is nearer
Estimate = Callable[[np.ndarray, str], np.ndarray]


@dataclass(frozen=True)
class WorldDepth:
    """Distance in metres along each pixel's ray (H, W), and where the sky was found (H, W bool)."""

    distance: np.ndarray
    sky: np.ndarray


def view_extent() -> float:
    return float(np.tan(np.radians(VIEW_DEG)))


def _view_terms(directions: np.ndarray, face: str, extent: float):
    """For each direction: whether the view sees it, where (window coordinates), the cosine to the view's
    axis (inverse depth times it is inverse distance) and the blend weight (0 at the view's edge)."""
    down, across, ahead = face_coordinates(directions, face, extent)
    edge = np.maximum(np.abs(down), np.abs(across))
    seen = ahead & (edge < 1.0)
    cosine = np.asarray(directions, dtype=np.float64) @ np.asarray(FACES[face][0], dtype=np.float64)
    weight = np.where(seen, np.clip(1.0 - edge, 0.0, 1.0) ** 2, 0.0)
    return seen, down, across, cosine, weight


def align_views(views: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Scale and shift (a, b) per view so that cos·(a·p + b) agrees wherever two views see one direction.

    Shifts are fixed by the overlaps (two views see a direction at different angles, so a shift common to
    both would disagree); only one global scale is free: the first view's a is 1, and the camera height
    sets the metres later.
    """
    extent = view_extent()
    directions = equirect_directions(*ALIGN_GRID).reshape(-1, 3)
    names = list(views)
    terms = {name: _view_terms(directions, name, extent) for name in names}
    samples = {
        name: sample_face(views[name][..., None].astype(np.float64), down, across)[..., 0]
        for name, (_, down, across, _, _) in terms.items()
    }
    # Unknowns: b of the first view, then a and b of each other view.
    columns = {names[0]: (None, 0), **{name: (2 * i + 1, 2 * i + 2) for i, name in enumerate(names[1:])}}
    size = 2 * len(names) - 1
    rows, rhs = [], []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            both = np.nonzero(terms[first][0] & terms[second][0])[0]
            block, value = np.zeros((both.size, size)), np.zeros(both.size)
            for name, sign in ((first, 1.0), (second, -1.0)):
                cosine, p = terms[name][3][both], samples[name][both]
                a_column, b_column = columns[name]
                if a_column is None:
                    value -= sign * cosine * p  # the first view's a is 1: a known term
                else:
                    block[:, a_column] += sign * cosine * p
                block[:, b_column] += sign * cosine
            rows.append(block)
            rhs.append(value)
    # A view that sees one plane square on (a ceiling, the floor straight below) answers one inverse
    # depth everywhere, which fixes a·p + b but not a and b apart: a weak pull toward (1, 0) keeps such a
    # view's pair finite without moving the well-determined ones.
    count = sum(block.shape[0] for block in rows)
    prior = PRIOR_WEIGHT * np.sqrt(count / size) * np.eye(size)
    target = np.array([0.0, *np.tile([1.0, 0.0], len(names) - 1)])
    solution, *_ = np.linalg.lstsq(
        np.concatenate([*rows, prior]), np.concatenate([*rhs, prior @ target]), rcond=None
    )
    aligned = {names[0]: (1.0, float(solution[0]))}
    for name in names[1:]:
        a_column, b_column = columns[name]
        aligned[name] = (float(solution[a_column]), float(solution[b_column]))
    return aligned


def merge_views(views: dict[str, np.ndarray], height: int, width: int) -> np.ndarray:
    """One equirectangular map of relative inverse distance from aligned views (larger is nearer)."""
    aligned = align_views(views)
    extent = view_extent()
    directions = equirect_directions(height, width)
    total = np.zeros((height, width))
    weights = np.zeros((height, width))
    for name, inverse_depth in views.items():
        a, b = aligned[name]
        seen, down, across, cosine, weight = _view_terms(directions, name, extent)
        p = sample_face(inverse_depth[..., None].astype(np.float64), down[seen], across[seen])[..., 0]
        total[seen] += weight[seen] * cosine[seen] * (a * p + b)
        weights[seen] += weight[seen]
    return total / np.maximum(weights, 1e-12)


def metric_distance(inverse: np.ndarray, camera_height: float) -> WorldDepth:
    """Distances in metres: scaled so the ground below is `camera_height` away; the sky put far away."""
    directions = equirect_directions(*inverse.shape)
    positive = inverse > 0
    relative = np.where(positive, 1.0 / np.maximum(inverse, 1e-12), np.inf)
    below = (directions[..., 2] < NADIR_Z) & positive
    if not below.any():
        raise InvalidImage("No ground below the camera in the depth map: it cannot be given a metric scale")
    # The height of a flat ground under the camera is distance times -z of the ray.
    height = float(np.median(relative[below] * -directions[below][:, 2]))
    distance = relative * (camera_height / height)
    sky = ~np.isfinite(distance) | (distance > SKY_DISTANCE)
    distance = np.where(sky, SKY_DISTANCE, distance).astype(np.float32)
    return WorldDepth(distance=distance, sky=sky)


def estimate_world_depth(pano: np.ndarray, estimate: Estimate, view_size: int, camera_height: float = 1.6):
    """The WorldDepth of an sRGB panorama, `estimate` run on each of the six widened cube views."""
    extent = view_extent()
    height, width = pano.shape[:2]
    views = {
        face: np.asarray(estimate(equirect_to_face(pano, face, view_size, extent), face)) for face in FACES
    }
    return metric_distance(merge_views(views, height, width), camera_height)


def depth_from_image(values: np.ndarray, metres: bool, camera_height: float = 1.6) -> WorldDepth:
    """A user's own equirectangular depth map: distance along each ray (not inverse depth). A float map
    (EXR) is metres as it is; an 8- or 16-bit one (near dark, far bright) is rescaled so the ground
    below sits at `camera_height`."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 3:
        data = data[..., 0]
    height, width = data.shape
    if abs(width - 2 * height) > max(1, round(0.005 * width)):
        raise InvalidImage(f"The depth map is {width}x{height}: it must be equirectangular, 2:1")
    if not metres:
        data = metric_distance(1.0 / np.maximum(data, 1e-9), camera_height).distance
    sky = data >= SKY_DISTANCE
    return WorldDepth(distance=np.minimum(data, SKY_DISTANCE).astype(np.float32), sky=sky)
