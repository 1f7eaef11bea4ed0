"""The cut-out of a prop's image: the object apart from the plain backdrop Promptscape asked the model for.

The prompt asks for the object alone on a plain background, so the backdrop is what the image's border shows.
The backdrop's colour is fitted over the border as a plane in x and y per channel (a studio backdrop is rarely
flat: it shades from top to bottom); a pixel is the object's when its colour differs from the backdrop there
by more than the border's own noise allows. Backdrop-coloured pixels count as backdrop only when they are
joined to the border through backdrop or large (a hole through the object): a white highlight inside a
white-backdrop object stays the object's.
Specks are opened away and only the large parts kept. No model: nothing to download, and it runs in
milliseconds. numpy, with scipy.ndimage (scikit-image's dependency) for the connected regions.
"""

import numpy as np

from ..errors import GenerationFailed, missing_dependency

BORDER = 4  # pixels of the image's edge taken as the backdrop
MIN_DIFFERENCE = 0.08  # sRGB distance below which a colour is the backdrop's, whatever the noise
NOISE_FACTOR = 5.0  # times the border's robust spread
KEEP_SHARE = 0.1  # parts smaller than this share of the largest are specks
HOLE_SHARE = 0.1  # enclosed backdrop-coloured regions this share of the object or more are holes through it
EMPTY = (
    "the image shows no object apart from its background: try another seed, or describe one object "
    "(the image is in the output folder)"
)


def _ndimage():
    try:
        from scipy import ndimage
    except ImportError as error:
        raise missing_dependency("scipy (with scikit-image)", "props") from error
    return ndimage


def backdrop(image: np.ndarray, border: int = BORDER) -> np.ndarray:
    """The backdrop's colour at every pixel: a plane a + b x + c y per channel, fitted by least squares to
    the border's pixels, then again without those far from the first fit (an object touching the edge)."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    grid = np.stack([np.ones((height, width)), x / width, y / height], axis=-1)
    basis, colours = grid[_edge(image.shape, border)], image[_edge(image.shape, border)].astype(np.float64)
    for _ in range(3):
        coefficients, *_ = np.linalg.lstsq(basis, colours, rcond=None)
        residual = np.linalg.norm(colours - basis @ coefficients, axis=-1)
        near = residual <= max(MIN_DIFFERENCE, 3 * np.median(residual))
        basis, colours = basis[near], colours[near]
    return grid @ coefficients


def _edge(shape: tuple, border: int) -> np.ndarray:
    edge = np.zeros(shape[:2], bool)
    edge[:border], edge[-border:], edge[:, :border], edge[:, -border:] = True, True, True, True
    return edge


def cutout_mask(image: np.ndarray, border: int = BORDER) -> np.ndarray:
    """A boolean (H, W) mask of the object in an sRGB image (H, W, 3) in 0-1 drawn on a plain backdrop.
    Raises GenerationFailed when nothing stands out from the backdrop."""
    ndimage = _ndimage()
    image = np.asarray(image, dtype=np.float32)[..., :3]
    difference = np.linalg.norm(image - backdrop(image, border), axis=-1)
    edge = _edge(difference.shape, border)
    spread = 1.4826 * np.median(np.abs(difference[edge] - np.median(difference[edge])))
    similar = difference <= max(MIN_DIFFERENCE, np.median(difference[edge]) + NOISE_FACTOR * spread)
    labels, _ = ndimage.label(similar)
    outside = np.isin(labels, np.unique(labels[edge & similar]))  # backdrop joined to the border
    # Enclosed backdrop colour: a hole through the object when large, a highlight on it when small.
    sizes = np.bincount(labels.ravel())
    large = sizes >= HOLE_SHARE * (~outside).sum()
    large[0] = False
    mask = ndimage.binary_opening(~(outside | large[labels]), iterations=2)
    labels, count = ndimage.label(mask)
    if count == 0:
        raise GenerationFailed(EMPTY)
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= KEEP_SHARE * sizes.max()) + 1
    return np.isin(labels, keep)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(mask, truth).sum()
    return float(np.logical_and(mask, truth).sum() / union) if union else 1.0


def framed(image: np.ndarray, mask: np.ndarray, share: float = 0.85, grey: float = 0.5) -> np.ndarray:
    """The object cut out onto a grey square, its larger side `share` of the square's, centred: what
    TripoSR was trained on (its authors' preprocessing: background removed, foreground resized to 0.85)."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    alpha = mask[top:bottom, left:right, None].astype(np.float32)
    crop = image[top:bottom, left:right, :3] * alpha + grey * (1 - alpha)
    side = int(np.ceil(max(crop.shape[:2]) / share))
    square = np.full((side, side, 3), grey, np.float32)
    y, x = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
    square[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return square
