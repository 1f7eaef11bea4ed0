"""Scene objects as arrays for a projected texture: UV maps, triangles, corner normals, cameras.

Main thread only (bpy). Each attribute is read with one foreach_get; the rasterising and baking that grow
with the texture run in numpy (generation/imaging/raster.py, texture_bake.py) on these arrays.
"""

from dataclasses import dataclass

import bpy
import numpy as np

from ..generation.errors import PromptscapeError
from ..generation.imaging import cameras, texture_project


@dataclass(frozen=True)
class MeshArrays:
    """One object's evaluated mesh: vertices (V, 3) and triangles (T, 3) of vertex indices, UVs (T, 3, 2)
    and normals (T, 3, 3) per triangle corner, in object space; `matrix` (4x4) takes them to world space."""

    name: str
    vertices: np.ndarray
    triangles: np.ndarray
    corner_uvs: np.ndarray
    corner_normals: np.ndarray
    matrix: np.ndarray

    def world_vertices(self) -> np.ndarray:
        return self.vertices @ self.matrix[:3, :3].T + self.matrix[:3, 3]


def ensure_uv_map(obj) -> bool:
    """Give a mesh without a UV map one with Smart UV Project; True when one was made."""
    if obj.data.uv_layers:
        return False
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    # Edit mode takes in every selected mesh: only this one is selected while it runs.
    selected = [other for other in view_layer.objects if other.select_get()]
    for other in selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj
    override = {"active_object": obj, "object": obj}
    override.update(selected_objects=[obj], selected_editable_objects=[obj])
    try:
        with bpy.context.temp_override(**override):
            bpy.ops.object.mode_set(mode="EDIT")
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(island_margin=0.02)
            bpy.ops.object.mode_set(mode="OBJECT")
    finally:
        obj.select_set(False)
        for other in selected:
            other.select_set(True)
        view_layer.objects.active = previous
    return True


def smart_uvs(obj) -> np.ndarray:
    """The UV map Smart UV Project would give the object, per loop (L, 2), made on a copy of its mesh: the
    object itself is left as it is until the result is applied (add_uv_map)."""
    copy = bpy.data.objects.new(f"{obj.name} (UVs)", obj.data.copy())
    bpy.context.scene.collection.objects.link(copy)
    try:
        ensure_uv_map(copy)
        return _read(copy.data.uv_layers[0].uv, "vector", len(copy.data.loops) * 2, np.float32).reshape(-1, 2)
    finally:
        mesh = copy.data
        bpy.data.objects.remove(copy)
        bpy.data.meshes.remove(mesh)


def add_uv_map(obj, loop_uvs: np.ndarray) -> None:
    """Give the object's mesh the UV map `loop_uvs` (L, 2) made for it by smart_uvs."""
    layer = obj.data.uv_layers.new(name="UVMap")
    layer.uv.foreach_set("vector", np.ascontiguousarray(loop_uvs, np.float32).ravel())


def mesh_arrays(obj, depsgraph=None, uvs: bool = True, loop_uvs: np.ndarray | None = None) -> MeshArrays:
    """The object's mesh with its modifiers applied, as arrays (its active UV map, or `loop_uvs` (L, 2) per
    loop of its own mesh; zeros with `uvs` off); refused in words when it has no faces or no UV map."""
    if obj.type != "MESH":
        raise PromptscapeError(f"{obj.name} is not a mesh: select mesh objects to texture")
    if not obj.data.polygons:
        raise PromptscapeError(f"{obj.name} has no faces to put a texture on: select a mesh with faces")
    if uvs and loop_uvs is None and not obj.data.uv_layers:
        raise PromptscapeError(f"{obj.name} has no UV map: add one (UV > Smart UV Project)")
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if not mesh.polygons or (uvs and loop_uvs is None and mesh.uv_layers.active is None):
            raise PromptscapeError(f"{obj.name}'s modifiers leave no faces or no UV map to put a texture on")
        mesh.calc_loop_triangles()
        count = len(mesh.loop_triangles)
        loops = _read(mesh.loop_triangles, "loops", count * 3, np.int32).reshape(count, 3)
        vertex_of_loop = _read(mesh.loops, "vertex_index", len(mesh.loops), np.int32)
        vertices = _read(mesh.vertices, "co", len(mesh.vertices) * 3, np.float32).reshape(-1, 3)
        layer = mesh.uv_layers.active
        corner_uvs = np.zeros((len(mesh.loops), 2), np.float32)
        if loop_uvs is not None:
            if len(loop_uvs) != len(mesh.loops):
                raise PromptscapeError(
                    f"{obj.name}'s modifiers change its faces and it has no UV map: add one (UV > Smart UV "
                    "Project), then try again"
                )
            corner_uvs = np.asarray(loop_uvs, np.float32)
        elif uvs and layer is not None:
            corner_uvs = _read(layer.uv, "vector", len(mesh.loops) * 2, np.float32).reshape(-1, 2)
        normals = _read(mesh.corner_normals, "vector", len(mesh.loops) * 3, np.float32).reshape(-1, 3)
        return MeshArrays(
            name=obj.name,
            vertices=vertices.astype(np.float64),
            triangles=vertex_of_loop[loops].astype(np.int64),
            corner_uvs=corner_uvs[loops].astype(np.float64),
            corner_normals=normals[loops].astype(np.float64),
            matrix=np.array(evaluated.matrix_world, dtype=np.float64),
        )
    finally:
        evaluated.to_mesh_clear()


def _read(collection, attribute: str, size: int, dtype) -> np.ndarray:
    values = np.empty(size, dtype=dtype)
    collection.foreach_get(attribute, values)
    return values


def scene_camera(camera_obj, width: int, height: int) -> cameras.Camera:
    """A camera object as Blender renders it at width x height (perspective only)."""
    if camera_obj is None or camera_obj.type != "CAMERA":
        raise PromptscapeError("No camera to project from: add a camera, or name one with camera=")
    data = camera_obj.data
    if data.type != "PERSP":
        raise PromptscapeError(f"{camera_obj.name} is {data.type.lower()}: project from a perspective camera")
    matrix = np.array(camera_obj.matrix_world, dtype=np.float64)
    matrix[:3, :3] /= np.linalg.norm(matrix[:3, :3], axis=0)  # a scaled camera renders as an unscaled one
    return cameras.camera_from_lens(
        matrix,
        data.lens,
        data.sensor_width,
        data.sensor_height,
        data.sensor_fit,
        width,
        height,
        data.shift_x,
        data.shift_y,
        data.clip_start,
    )


def occluders(meshes: list[MeshArrays]) -> tuple[np.ndarray, np.ndarray]:
    """All the meshes' triangles in world space as one (vertices, triangles) pair, for depth maps."""
    vertices, triangles, offset = [], [], 0
    for mesh in meshes:
        vertices.append(mesh.world_vertices())
        triangles.append(mesh.triangles + offset)
        offset += len(mesh.vertices)
    if not vertices:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(vertices), np.concatenate(triangles)


def world_surface(mesh: MeshArrays) -> texture_project.Surface:
    """The mesh in world space, normals by the inverse transpose (right under non-uniform scale)."""
    inverse = np.linalg.inv(mesh.matrix[:3, :3])
    normals = mesh.corner_normals @ inverse
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    return texture_project.Surface(mesh.name, mesh.world_vertices(), mesh.triangles, mesh.corner_uvs, normals)
