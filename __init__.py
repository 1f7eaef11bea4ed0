# SPDX-License-Identifier: GPL-3.0-or-later
"""Promptscape: text to 360° HDRI worlds and seamless PBR materials, inside Blender.

This file only registers. Nothing here imports torch or diffusers: the extension must enable, and
its panel explain what is missing, on a Blender without them.
"""

from . import cli, job_runner, operators, panels, preferences, properties

_modules = (preferences, properties, job_runner, operators, panels, cli)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
