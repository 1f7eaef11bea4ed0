"""Pictures as numpy arrays: HDR radiance from a panorama, PBR maps, quality measures, image files.

numpy only: Blender's own Python has numpy but neither torch nor scipy, and World from Image and the
exports must work there.
"""
