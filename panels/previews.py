"""Icons for the sidebar: history thumbnails from result files and the live preview of a running job."""

import bpy
import bpy.utils.previews
import numpy as np

_collection = None  # a bpy.utils.previews collection, made at register
_live_source = None  # the job preview array the live icon shows, to skip redundant uploads


def thumbnail_icon(entry) -> int:
    """The icon id of a history entry's preview image (the panorama or the albedo), loaded once."""
    path = getattr(entry.outputs, "preview", None) or getattr(entry.outputs, "albedo", None)
    if _collection is None or path is None:
        return 0
    key = str(path)
    if key not in _collection:
        _collection.load(key, key, "IMAGE")
    return _collection[key].icon_id


def live_icon(job) -> int:
    """The icon id showing the running job's latest preview (0 when there is none yet)."""
    global _live_source
    preview = getattr(job, "preview", None)
    if _collection is None or preview is None:
        return 0
    item = _collection.get("live") or _collection.new("live")
    if preview is not _live_source:
        height, width = preview.shape[:2]
        rgba = np.ones((height, width, 4), np.float32)
        rgba[:, :, :3] = preview
        item.image_size = (width, height)
        item.image_pixels_float.foreach_set(rgba[::-1].ravel())  # icons store the bottom row first
        _live_source = preview
    return item.icon_id


def register():
    global _collection
    _collection = bpy.utils.previews.new()


def unregister():
    global _collection, _live_source
    if _collection is not None:
        bpy.utils.previews.remove(_collection)
    _collection = _live_source = None
