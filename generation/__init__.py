"""Promptscape's generation layer: requests, models, the worker, HDR and PBR post-processing, image files.

Nothing below this folder imports bpy. torch, diffusers and transformers are imported lazily, inside the
functions that need them, so the pure-numpy parts (HDR conversion, PBR maps, files) work on a Blender
without them.
"""
