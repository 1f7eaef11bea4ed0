"""Promptscape's generation layer: nothing below this folder imports bpy.

- `engine/`: everything that runs a torch model (requests, the worker thread, models, seamless wrap,
  call options, devices, previews). torch and diffusers are imported lazily, on first use.
- `imaging/`: numpy only (HDR reconstruction, PBR maps, quality measures, image files, outputs), so
  World and Material from Image work in a Blender without torch.
- `setup/`: installing the dependencies, the model catalog and downloads, tiny test models, self-test.

The same code runs inside Blender and on a Promptscape server.
"""
