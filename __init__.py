# SPDX-License-Identifier: GPL-3.0-or-later
"""Promptscape: text to 360° HDRI worlds and seamless PBR materials, inside Blender.

This file only registers. Nothing here imports torch or diffusers: the extension must enable, and
its panel explain what is missing, on a Blender without them.
"""

from . import cli, operators, panels, preferences, properties
from .flow import runner

_modules = (preferences, properties, runner, operators, panels, cli)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
