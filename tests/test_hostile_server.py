"""A hostile Promptscape server, driven from real Blender: the client refuses what it sends, in words,
and writes nothing outside the output folder.

The server is stdlib http.server on 127.0.0.1 in a thread that answers the protocol's calls with what a
compromised server (or someone in the middle of plain http) could send: file names that climb out of the
folder, a seed that is a path, a redirect to plain http, mesh arrays that do not hold together. No Ray.
"""

import io
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene, sky_panorama, write_png

TOKEN = "hostile-test-token"
FAST = {"steps": 2, "width": 128, "height": 64, "seed": 5}
WORLD_FILES = {"exr": "world.exr", "hdr": "world.hdr", "preview": "world-preview.png"}
DEPTH_FILES = {"exr": "world-depth.exr", "png": "world-depth.png", "arrays": "world-depth.npz"}


class Hostile(ThreadingHTTPServer):
    """Answers every job with `reply` (the status of a finished job, or a redirect) and serves `files`
    bytes for any file; records each request's path and Authorization header."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.reply, self.files, self.seen = {}, {}, []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: bytes, kind: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        server = self.server
        server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.command == "POST" and "redirect" in server.reply:
            return self._answer(307, b"", headers={"Location": server.reply["redirect"]})
        if self.command == "POST":
            return self._answer(201, b'{"id": "abc123"}')
        if "/files/" in self.path:
            name = self.path.rsplit("/", 1)[1]
            return self._answer(200, server.files.get(name, b"not an image"), "application/octet-stream")
        return self._answer(200, json.dumps(server.reply).encode())

    do_GET = do_POST = do_DELETE = _handle


@pytest.fixture
def hostile():
    server = Hostile()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def out(addon, tmp_path):
    """The preferences' output folder inside tmp_path (nothing else may appear there), with our token."""
    preferences = bpy.context.preferences.addons[addon.__name__].preferences
    saved = (preferences.server_token, preferences.output_folder, preferences.server_timeout)
    preferences.server_token, preferences.output_folder, preferences.server_timeout = (
        TOKEN,
        str(tmp_path / "out"),
        5,
    )
    yield tmp_path / "out"
    preferences.server_token, preferences.output_folder, preferences.server_timeout = saved


def done(files: dict, **metadata) -> dict:
    return {"id": "abc123", "state": "done", "step": 2, "steps": 2, "files": files, "report": {},
            "metadata": {"prompt": "x", "seed": "5", **metadata}}  # fmt: skip


def only_inside(out, tmp_path):
    """Every path under tmp_path is the output folder or inside it; no partial or escaped file anywhere."""
    found = [path for path in tmp_path.rglob("*") if path != out and out not in path.parents]
    assert found == [], found
    assert not list(out.rglob("*.part")) and not list(out.rglob("*.exr"))


@pytest.mark.parametrize(
    ("reply", "words"),
    [(done({**WORLD_FILES, "exr": "../../escape.exr"}), "refuses"),
     (done({**WORLD_FILES, "exr": "..\\..\\escape.exr"}), "refuses"),
     (done({**WORLD_FILES, "hdr": "/tmp/escape.hdr"}), "refuses"),
     (done({**WORLD_FILES, "evil": "world.exr"}), "refuses"),
     (done(WORLD_FILES, seed="../../../escape"), "seed"),
     (done(WORLD_FILES, seed="1; rm -rf ~"), "seed")],
)  # fmt: skip
def test_hostile_file_names_and_seeds_are_refused(api, hostile, out, tmp_path, reply, words):
    hostile.reply = reply
    scene = new_scene()
    before = scene.world
    with pytest.raises(api.PromptscapeError, match=words) as refused:
        api.generate_world("x", scene=scene, server=hostile.url, model="m", **FAST)
    assert f"127.0.0.1:{hostile.server_address[1]}" in str(refused.value)
    assert scene.world == before
    assert not [path for _, path, _ in hostile.seen if "/files/" in path]  # refused before any download
    only_inside(out, tmp_path)


def test_a_redirect_to_plain_http_is_refused_and_carries_no_token(api, hostile, out, tmp_path):
    hostile.reply = {"redirect": f"http://localhost:{hostile.server_address[1]}/collect"}
    with pytest.raises(api.PromptscapeError, match="redirect") as refused:
        api.generate_world("x", scene=new_scene(), server=hostile.url, model="m", **FAST)
    assert "follows no redirects" in str(refused.value)
    assert [path for _, path, _ in hostile.seen] == ["/v1/jobs"]  # /collect never asked, token never sent
    only_inside(out, tmp_path)


def test_an_oversized_or_malformed_status_is_refused_in_words(api, hostile, out, tmp_path):
    hostile.reply = {"id": "abc123", "state": "running", "step": 1, "steps": 2, "stage": "x" * (5 << 20)}
    with pytest.raises(api.PromptscapeError, match="answer is over 4 MiB"):
        api.generate_world("x", scene=new_scene(), server=hostile.url, model="m", **FAST)
    hostile.reply = {"id": "abc123", "state": "running", "step": "../../1", "steps": 2}
    with pytest.raises(api.PromptscapeError, match="step"):
        api.generate_world("x", scene=new_scene(), server=hostile.url, model="m", **FAST)
    only_inside(out, tmp_path)


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def hostile_meshes():
    distance = np.full((64, 128), 5.0, np.float32)
    positions = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    corners = np.array([0, 1, 2, 3, 4, 5, 6, 7], np.int32)
    mesh = {"positions": positions, "corners": corners, "sizes": np.array([4, 4], np.int32),
            "uvs": np.zeros((8, 2), np.float32), "split": np.array(0)}  # fmt: skip
    header = io.BytesIO()  # an array that claims a billion vertices, with no data behind it
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 3)}
    )
    return {
        "past the vertices": npz(distance=distance, **{**mesh, "corners": corners + 5}),
        "sizes not summing": npz(distance=distance, **{**mesh, "sizes": np.array([4, 3], np.int32)}),
        "not finite": npz(distance=distance, **{**mesh, "positions": positions * np.inf}),
        "oversized": _npz_with_member("positions.npy", header.getvalue(), distance=distance, **mesh),
    }


def _npz_with_member(name: str, raw: bytes, **arrays) -> bytes:
    """An .npz whose member `name` is the bytes `raw` (a header that lies), the others real arrays."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            if key + ".npy" != name:
                member = io.BytesIO()
                np.lib.format.write_array(member, np.asarray(value))
                archive.writestr(key + ".npy", member.getvalue())
        archive.writestr(name, raw)
    return buffer.getvalue()


@pytest.mark.parametrize("case", ["past the vertices", "sizes not summing", "not finite", "oversized"])
def test_inconsistent_mesh_arrays_never_reach_the_scene(api, hostile, out, tmp_path, case):
    scene = new_scene()
    world = api.world_from_image(str(write_png(tmp_path / "sky.png", sky_panorama(128, 64))), scene=scene)
    objects = set(bpy.data.objects)
    meshes = len(bpy.data.meshes)
    hostile.reply = done(DEPTH_FILES)
    hostile.files = {"world-depth.npz": hostile_meshes()[case]}
    with pytest.raises(api.PromptscapeError, match=r"world mesh is inconsistent|too large") as refused:
        api.world_mesh(world, scene=scene, server=hostile.url, depth_model="d", mesh_resolution=16)
    assert "nothing was added" in str(refused.value) or "too large" in str(refused.value)
    assert set(bpy.data.objects) == objects and len(bpy.data.meshes) == meshes
    assert not list(out.rglob("*.npz"))  # the arrays are not kept, refused or not


def test_the_mesh_writer_checks_arrays_before_blender_sees_them(addon):
    """Whatever the source, scene/world_mesh.py refuses inconsistent arrays before making a datablock;
    consistent ones come out as a valid mesh (validate() ran before update())."""
    import importlib

    writer = importlib.import_module(addon.__name__ + ".scene.world_mesh")
    arrays = importlib.import_module(addon.__name__ + ".generation.imaging.world_mesh")
    errors = importlib.import_module(addon.__name__ + ".generation.errors")
    good = arrays.build_world_mesh(np.full((32, 64), 4.0, np.float32), 16, 8)
    meshes = len(bpy.data.meshes)
    bad = arrays.MeshArrays(good.positions, good.corners + 1, good.sizes, good.uvs, good.split)
    with pytest.raises(errors.GenerationFailed, match="corner names a vertex outside"):
        writer.build_mesh("bad", bad)
    assert len(bpy.data.meshes) == meshes
    mesh = writer.build_mesh("good", good)
    try:
        assert (len(mesh.vertices), len(mesh.polygons)) == (len(good.positions), good.face_count)
        assert not mesh.validate(clean_customdata=False)  # nothing left to repair
    finally:
        bpy.data.meshes.remove(mesh)


def test_a_server_that_never_answered_says_it_could_not_connect(api, out, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scene = new_scene()
    with pytest.raises(api.PromptscapeError, match=f"Could not connect to 127.0.0.1:{port}"):
        api.generate_world("x", scene=scene, server=f"http://127.0.0.1:{port}", model="m", **FAST)
    assert scene.world is None or "promptscape" not in scene.world
    only_inside(out, tmp_path)
