"""Writers of Blender data: images, the world node tree, the PBR material. Main thread only."""
