"""Generating on a Promptscape server: a real Ray Serve app on 127.0.0.1 (CPU), driven from real Blender.

The server runs from .venv-server in a subprocess with the tiny model as its one named model. Every test
here is marked `server`; the ones that start a second server or run long jobs are also `slow`.
"""

import concurrent.futures
import importlib
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import bpy
import numpy as np
import pytest
from scene_helpers import new_scene, read_exr, sky_panorama, wait_until, write_png
from server_process import ServerProcess

pytestmark = pytest.mark.server
TOKEN = "test-token-0123456789"
FAST = {"steps": 3, "width": 128, "height": 64, "seed": 11}
KEEP_FILES = 8  # seconds the test server keeps a finished job's files
SLOW_STEPS = {"steps": 150, "width": 1024, "height": 512, "seed": 3}  # ~0.1 s a step on one CPU


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_sd, tiny_depth, tiny_transformers, tiny_triposr):
    folder = tmp_path_factory.mktemp("served-models")
    (folder / "tiny-sd").symlink_to(tiny_sd, target_is_directory=True)
    (folder / "tiny-zimage").symlink_to(tiny_transformers["zimage"], target_is_directory=True)
    (folder / "depth").mkdir()
    (folder / "depth" / "tiny-depth").symlink_to(tiny_depth, target_is_directory=True)
    (folder / "props").mkdir()
    (folder / "props" / "tiny-triposr").symlink_to(tiny_triposr, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    process = ServerProcess(models, tmp_path_factory.mktemp("server"), TOKEN, "--keep-files", str(KEEP_FILES))
    yield process
    process.stop()


@pytest.fixture
def prefs(addon):
    """The add-on's preferences pointed at no server, with a short silence limit; restored after."""
    preferences = bpy.context.preferences.addons[addon.__name__].preferences
    saved = (preferences.server, preferences.server_token, preferences.server_timeout)
    preferences.server, preferences.server_token, preferences.server_timeout = "", TOKEN, 5.0
    yield preferences
    preferences.server, preferences.server_token, preferences.server_timeout = saved


def world_file(world):
    return bpy.path.abspath(world.node_tree.nodes["Promptscape Environment"].image.filepath)


def test_remote_world_equals_local_world(api, server, prefs, tiny_sd):
    local = api.generate_world("a sky over dunes", scene=new_scene(), model=str(tiny_sd), **FAST)
    remote = api.generate_world(
        "a sky over dunes", scene=new_scene(), server=server.url, model="tiny-sd", **FAST
    )
    a, b = read_exr(world_file(local)), read_exr(world_file(remote))
    assert a.shape == b.shape
    a, b = a / np.median(a), b / np.median(b)
    assert np.mean(np.abs(a - b) <= 0.01 * np.abs(a)) >= 0.99
    assert remote["promptscape"]["model"] == "tiny-sd"  # as the client named it, never a server path
    assert remote["promptscape"]["seed"] == "11"


def test_a_transformer_world_on_the_server_equals_the_local_one(api, server, prefs, tiny_transformers):
    options = {**FAST, "poles": "off"}
    model = str(tiny_transformers["zimage"])
    local = api.generate_world("a misty harbour", scene=new_scene(), model=model, **options)
    remote = api.generate_world("a misty harbour", scene=new_scene(), server=server.url, model="tiny-zimage",
                                **options)  # fmt: skip
    a, b = read_exr(world_file(local)), read_exr(world_file(remote))
    assert a.shape == b.shape
    a, b = a / np.median(a), b / np.median(b)
    assert np.mean(np.abs(a - b) <= 0.01 * np.abs(a)) >= 0.99
    assert (remote["promptscape"]["model"], remote["promptscape"]["steps"]) == (
        "tiny-zimage",
        str(FAST["steps"]),
    )


def test_remote_material_lands_in_the_scene(api, server, prefs):
    new_scene()
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    made = api.generate_material(
        "mossy stones", objects=[cube], server=server.url, model="tiny-sd", steps=2, width=64, height=64
    )
    assert cube.active_material == made and made["promptscape"]["mode"] == "texture"
    assert made["promptscape"]["model"] == "tiny-sd"


def test_a_server_elsewhere_needs_online_access(api, prefs):
    assert not bpy.app.online_access
    with pytest.raises(api.PromptscapeError, match="online access"):
        api.generate_world("x", scene=new_scene(), server="http://10.0.0.7:8765", model="tiny-sd", **FAST)


@pytest.mark.slow
def test_cancel_stops_the_remote_job_within_a_step(addon, api, server, prefs):
    scene = new_scene()
    before = scene.world
    generation = api.generate_world(
        "a long night", scene=scene, server=server.url, model="tiny-sd", wait=False, **SLOW_STEPS
    )
    wait_until(lambda: generation.progress[0] >= 2, 90, "step 2 on the server")
    panel = importlib.import_module(addon.__name__ + ".panels.main")
    assert f"on 127.0.0.1:{server.port}" in panel.progress_text(generation._task)[1]
    assert generation._task.job.preview is not None  # the server's small preview, decoded
    generation.cancel()
    wait_until(lambda: generation.done, 30, "the cancel")
    assert generation.state == "cancelled" and scene.world == before
    status, job = server.call("GET", f"/v1/jobs/{generation._task.job.id}?preview=0")
    assert status == 200 and job["state"] == "cancelled"
    # The work stops within one step of hearing the cancel; getting there (gateway -> cancel board ->
    # replica) can take two or three of this test's 0.1 s steps on a loaded 2-core machine.
    assert job["step"] - job["replica_step_at_cancel"] <= 1, job
    assert job["step"] - job["step_at_cancel"] <= 3, job


def test_a_wrong_or_missing_token_is_refused_in_words(api, server, prefs):
    prefs.server_token = "not-the-token"
    with pytest.raises(api.PromptscapeError, match="token is wrong"):
        api.generate_world("x", scene=new_scene(), server=server.url, model="tiny-sd", **FAST)
    status, answer = server.call("GET", "/v1/models", token="")
    assert status == 401 and "needs a token" in answer["error"]
    status, answer = server.call("GET", "/v1/models", token="wrong")
    assert status == 401 and "token is wrong" in answer["error"]
    assert server.call("GET", "/v1/health", token="")[0] == 200  # health needs no token
    offered = server.call("GET", "/v1/models")[1]
    folders = [{"name": "tiny-sd", "source": "folder"}, {"name": "tiny-zimage", "source": "folder"}]
    assert offered["models"] == folders
    assert offered["depth_models"][0] == {"name": "tiny-depth", "source": "folder"}


@pytest.mark.parametrize("model", ["/etc", "../tiny-sd", "tiny-sd/../../etc", "org/not-offered", "x" * 300])
def test_models_outside_the_allowed_names_are_refused(server, models, model):
    status, answer = server.call("POST", "/v1/jobs", {"kind": "world", "prompt": "x", "model": model, **FAST})
    assert status == 400 and "model" in answer["error"]
    assert str(models) not in answer["error"]


@pytest.mark.parametrize(
    "option",
    [{"vae": "/etc/passwd"}, {"vae": "org/not-a-curated-vae"}, {"upscale": 2, "upscaler": "/tmp/x.pth"},
     {"upscale": 2, "upscaler": "not-offered"}],
)  # fmt: skip
def test_vaes_and_upscalers_are_named_never_given_as_paths(server, models, option):
    body = {"kind": "world", "prompt": "x", "model": "tiny-sd", **FAST, **option}
    status, answer = server.call("POST", "/v1/jobs", body)
    name = next(iter(option)) if "vae" in option else "upscaler"
    assert status == 400 and answer["error"].startswith(f"{name}:"), answer
    assert str(models) not in answer["error"]  # the client's own value may be echoed, the server's never


def test_an_upscaled_world_is_upscaled_on_the_server(api, server, prefs, models, tiny_esrgan):
    (models / "upscalers").mkdir(exist_ok=True)
    (models / "upscalers" / "tiny-esrgan.safetensors").write_bytes(tiny_esrgan.read_bytes())
    world = api.generate_world(
        "a sky over dunes", scene=new_scene(), server=server.url, model="tiny-sd", upscale=2,
        upscaler="tiny-esrgan", **FAST,
    )  # fmt: skip
    assert read_exr(world_file(world)).shape == (2 * FAST["height"], 2 * FAST["width"], 3)
    recorded = world["promptscape"]
    assert recorded["poles"] == "repair" and recorded["upscale"] == "2"
    assert recorded["upscaler"] == "tiny-esrgan" and str(models) not in str(dict(recorded))  # its name here


def test_a_model_path_from_blender_is_refused(api, server, prefs, models, tiny_sd):
    with pytest.raises(api.PromptscapeError, match="not a path") as refused:
        api.generate_world("x", scene=new_scene(), server=server.url, model=str(tiny_sd), **FAST)
    assert f"The server 127.0.0.1:{server.port} refused the job" in str(refused.value)
    assert str(models) not in str(refused.value)


def test_bodies_of_another_type_are_refused(server, tmp_path):
    """A web page can send text/plain (or form data) to any address without asking first: refused."""
    body = {"kind": "world", "prompt": "x", "model": "tiny-sd", **FAST}
    for kind in ("text/plain", "application/x-www-form-urlencoded"):
        status, answer = server.call("POST", "/v1/jobs", body, headers={"Content-Type": kind})
        assert status == 415 and "Content-Type: application/json" in answer["error"], answer
    png = write_png(tmp_path / "sky.png", sky_panorama()).read_bytes()
    status, answer = post_panorama(server, png, {"kind": "depth"}, kind="text/plain")
    assert status == 415 and "Content-Type: image/png" in answer["error"]


def test_oversized_and_bad_requests_are_refused(server):
    status, answer = server.call(
        "POST", "/v1/jobs", raw=b'{"kind": "world", "prompt": "' + b"x" * 70000 + b'"}'
    )
    assert status == 413 and "KiB" in answer["error"]
    status, answer = server.call(
        "POST", "/v1/jobs", {"kind": "world", "prompt": "x" * 3000, "model": "tiny-sd"}
    )
    assert status == 400 and "at most 2000" in answer["error"]
    status, answer = server.call("POST", "/v1/jobs", {"kind": "world", "prompt": "x", "steps": 10**9})
    assert status == 400 and "steps" in answer["error"]
    status, answer = server.call("POST", "/v1/jobs", raw=b"\x80not json")
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = server.call("POST", "/v1/jobs", {"kind": "video", "prompt": "x"})
    assert status == 400 and "kind" in answer["error"]


@pytest.mark.slow
def test_a_server_killed_mid_job_fails_the_job_and_leaves_the_scene(api, models, prefs, tmp_path):
    """... and once the server is back on the same address, the next job runs there as if nothing happened."""
    doomed, revived = ServerProcess(models, tmp_path / "doomed", TOKEN), None
    try:
        scene = new_scene()
        before = scene.world
        generation = api.generate_world(
            "a storm", scene=scene, server=doomed.url, model="tiny-sd", wait=False, **SLOW_STEPS
        )
        wait_until(lambda: generation.progress[0] >= 1, 90, "the first step on the server")
        doomed.kill()
        wait_until(lambda: generation.done, 30, "the job to end")
        assert generation.state == "failed" and scene.world == before
        with pytest.raises(api.PromptscapeError, match=f"127.0.0.1:{doomed.port}"):
            generation.result()
        doomed.stop()
        revived = ServerProcess(models, tmp_path / "revived", TOKEN, port=doomed.port)
        world = api.generate_world("after the storm", scene=scene, server=doomed.url, model="tiny-sd", **FAST)
        assert scene.world == world and world["promptscape"]["model"] == "tiny-sd"
    finally:
        (revived or doomed).stop()  # the revived one holds the port once it is up


def test_a_silent_server_is_reported_within_the_timeout(api, prefs):
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        prefs.server_timeout = 2.0
        started = time.monotonic()
        with pytest.raises(
            api.PromptscapeError, match=f"127.0.0.1:{silent.getsockname()[1]} stopped answering"
        ):
            api.generate_world(
                "x",
                scene=new_scene(),
                server=f"http://127.0.0.1:{silent.getsockname()[1]}",
                model="tiny-sd",
                **FAST,
            )
        assert time.monotonic() - started < 10


def test_a_batch_runs_on_the_server(addon, server, prefs, tmp_path, monkeypatch):
    cli = importlib.import_module(addon.__name__ + ".cli")
    prefs.server_token = ""  # headless: the token comes from the environment
    monkeypatch.setenv("PROMPTSCAPE_SERVER_TOKEN", TOKEN)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "remote batch sky", "model": "tiny-sd", **FAST}) + "\n")
    out = tmp_path / "out"
    assert cli.main(["batch", str(jobs), "--output-dir", str(out), "--server", server.url]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done"] == 1 and (out / "0001-remote-batch-sky.blend").exists()
    assert any((out / "promptscape").glob("*.exr"))  # downloaded before the scene took it
    saved = (out / "0001-remote-batch-sky.blend").read_bytes()
    assert TOKEN.encode() not in saved and server.url.encode() not in saved  # neither in the .blend
    for exr in (out / "promptscape").glob("*.exr"):
        assert TOKEN.encode() not in exr.read_bytes()
    bpy.ops.wm.read_homefile(use_empty=True)


def test_the_queue_takes_64_jobs_at_once_and_cancels_queued_ones(server):
    """80 submissions at the same moment: 64 (the default --max-jobs) are taken, each counted as soon as it
    is accepted, and the rest refused in words; then every one is cancelled, waiting or not."""
    body = {"kind": "world", "prompt": "queued", "model": "tiny-sd", **SLOW_STEPS}  # the first keeps it busy
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: server.call("POST", "/v1/jobs", body), range(80)))
    ids = [answer["id"] for status, answer in answers if status == 201]
    refused = [answer["error"] for status, answer in answers if status == 429]
    assert len(ids) == 64 and len(refused) == 16, [status for status, _ in answers]
    assert all("queue is full (64 jobs)" in error for error in refused)
    for job_id in ids:
        assert server.call("DELETE", f"/v1/jobs/{job_id}")[0] == 202

    def all_ended():
        return all(
            server.call("GET", f"/v1/jobs/{i}?preview=0")[1]["state"] in ("done", "cancelled") for i in ids
        )

    wait_until(all_ended, 180, "every queued job to end")
    assert {server.call("GET", f"/v1/jobs/{i}?preview=0")[1]["state"] for i in ids} == {"cancelled"}
    status, answer = server.call("POST", "/v1/jobs", body)  # ended jobs no longer count
    assert status == 201 and server.call("DELETE", f"/v1/jobs/{answer['id']}")[0] == 202


def test_finished_jobs_files_expire(server):
    body = {"kind": "world", "prompt": "short lived", "model": "tiny-sd", **FAST}
    job_id = server.call("POST", "/v1/jobs", body)[1]["id"]
    wait_until(
        lambda: server.call("GET", f"/v1/jobs/{job_id}?preview=0")[1]["state"] == "done", 180, "the job"
    )  # seconds on an idle machine; the bound is for a loaded one
    files = server.call("GET", f"/v1/jobs/{job_id}?preview=0")[1]["files"]
    assert set(files) == {"exr", "hdr", "preview"}
    assert server.call("GET", f"/v1/jobs/{job_id}/files/nope.exr")[0] == 404
    wait_until(
        lambda: server.call("GET", f"/v1/jobs/{job_id}")[0] == 404, 4 * KEEP_FILES, "the job to expire"
    )


def test_the_depth_and_mesh_of_a_world_come_from_the_server(api, server, prefs, tiny_depth, tmp_path):
    """The panorama goes up as the 8-bit picture the depth model sees; the depth files and the mesh's
    arrays come back, and the mesh is built here like a local one."""
    scene = new_scene()
    world = api.world_from_image(str(write_png(tmp_path / "sky.png", sky_panorama())), scene=scene)
    local = read_exr(api.world_depth(world, scene=scene, depth_model=str(tiny_depth)))[..., 0]
    path = api.world_depth(world, scene=scene, server=server.url, depth_model="tiny-depth")
    remote = read_exr(path)[..., 0]
    assert remote.shape == local.shape and world["promptscape_depth"] == str(path)
    # The only difference: the upload is 8-bit where the local model saw float pixels.
    assert np.median(np.abs(remote - local) / local) < 0.01, np.median(np.abs(remote - local) / local)
    obj = api.world_mesh(world, scene=scene, server=server.url, depth_model="tiny-depth", mesh_resolution=32)
    assert obj.name in scene.objects and obj["promptscape"]["mode"] == "mesh"
    assert obj["promptscape"]["depth_model"] == "tiny-depth"
    made_there = mesh_of(obj)
    # The same mesh as one built here from the depth map the server sent back (EXR in metres).
    made_here = mesh_of(api.world_mesh(world, depth=path, scene=scene, mesh_resolution=32))
    assert made_there.shape == made_here.shape
    assert np.abs(made_there - made_here).max() < 1e-3, np.abs(made_there - made_here).max()
    folder = Path(path).parent
    assert not list(folder.glob("*.npz")) and not list(folder.glob(".promptscape-upload-*"))


def mesh_of(obj) -> np.ndarray:
    positions = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", positions)
    return positions


def post_panorama(server, body: bytes, job: dict, length: int | None = None, kind: str = "image/png"):
    request = urllib.request.Request(server.url + "/v1/depth", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {server.token}")
    request.add_header("Content-Type", kind)
    request.add_header("X-Promptscape-Job", json.dumps(job))
    if length is not None:
        request.add_header("Content-Length", str(length))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_depth_uploads_and_models_are_bounded(server, models, tmp_path):
    png = write_png(tmp_path / "sky.png", sky_panorama()).read_bytes()
    for path in ("/opt/models/depth", "../depth/tiny-depth", "org/not-offered"):
        status, answer = post_panorama(server, png, {"kind": "depth", "depth_model": path})
        assert status == 400 and "depth_model" in answer["error"] and str(models) not in answer["error"]
    named = {"kind": "depth", "depth_model": "tiny-depth"}
    status, answer = post_panorama(server, b"GIF89a not a png", named)
    assert status == 400 and "not a PNG" in answer["error"]
    square = write_png(tmp_path / "square.png", np.full((64, 64, 3), 0.5)).read_bytes()
    status, answer = post_panorama(server, square, named)
    assert status == 400 and "2:1" in answer["error"]
    status, answer = post_panorama(server, png, {"kind": "depth"}, length=1 << 30)
    assert status == 413 and "MiB" in answer["error"]
    status, answer = post_panorama(server, png, {"kind": "depth", "depth": "/etc/passwd"})
    assert status == 400 and "leave them out" in answer["error"]


@pytest.mark.slow
def test_a_server_without_a_token_answers_only_this_computers_programs(models, tmp_path):
    """Without a token: the Host must name this computer and no web page (Origin) may call, on every
    route; jobs also end at --job-timeout, and the server, not the client, picks the device."""
    open_server = ServerProcess(models, tmp_path / "open", "", "--job-timeout", "6")
    try:
        assert open_server.call("GET", "/v1/health")[0] == 200
        rebound = {"Host": f"attacker.example:{open_server.port}"}
        for method, path in (("GET", "/v1/health"), ("GET", "/v1/models"), ("GET", "/v1/jobs/x")):
            status, answer = open_server.call(method, path, headers=rebound)
            assert status == 421 and "no token" in answer["error"], (path, answer)
            status, answer = open_server.call(method, path, headers={"Origin": "https://evil.example"})
            assert status == 403 and "web pages" in answer["error"], (path, answer)
        body = {"kind": "world", "prompt": "x", "model": "tiny-sd", **SLOW_STEPS}
        status, answer = open_server.call("POST", "/v1/jobs", body, headers={"Origin": "null"})
        assert status == 403
        status, answer = open_server.call("POST", "/v1/jobs", {**body, "device": "cpu"})
        assert status == 400 and "this server decides where its jobs run" in answer["error"]
        status, answer = open_server.call("POST", "/v1/jobs", body)
        assert status == 201, answer
        job = f"/v1/jobs/{answer['id']}?preview=0"
        wait_until(lambda: open_server.call("GET", job)[1]["state"] == "failed", 60, "the job timeout")
        assert "limit of 6 s (--job-timeout)" in open_server.call("GET", job)[1]["message"]
    finally:
        open_server.stop()


def corners(obj) -> np.ndarray:
    return np.array([obj.matrix_world @ vertex.co for vertex in obj.data.vertices])


def test_a_prop_made_on_the_server_equals_the_local_one(api, server, prefs, tiny_sd, tiny_triposr):
    """The whole prop runs there; the image, mask and mesh (.npz, read without pickle) come back."""
    scene = new_scene()
    scene.cursor.location = (1.0, 1.0, 0.0)
    prop = {"steps": 2, "width": 64, "height": 64, "seed": 3, "size": 2.0}
    local = api.generate_prop("a garden gnome", scene=scene, model=str(tiny_sd), prop_model=str(tiny_triposr),
                              device="cpu", **prop)  # fmt: skip
    remote = api.generate_prop("a garden gnome", scene=scene, model="tiny-sd", prop_model="tiny-triposr",
                               server=server.url, **prop)  # fmt: skip
    assert remote != local and remote.name in scene.objects
    assert np.allclose(corners(remote), corners(local), atol=1e-5)  # at the cursor, the same size
    record = dict(remote["promptscape"])
    assert (record["mode"], record["model"], record["prop_model"]) == ("prop", "tiny-sd", "tiny-triposr")
    assert remote.data.color_attributes["Color"]
    with pytest.raises(api.PromptscapeError, match="prop_model"):
        api.generate_prop(
            "a bench", scene=scene, model="tiny-sd", prop_model="someone/Else", server=server.url, **prop
        )
