"""What a client accepts from a server: its URL, result file names, seed and mesh arrays (server_trust)."""

import io
import zipfile

import numpy as np
import pytest
from conftest import source_module


@pytest.fixture(scope="module")
def trust():
    return source_module("engine.server_trust")


@pytest.fixture(scope="module")
def mesh_module():
    return source_module("imaging.world_mesh")


@pytest.fixture(scope="module")
def failed(errors):
    return errors.GenerationFailed


# --- the URL policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:80/"])
def test_plain_http_on_this_computer_is_fine(trust, url):
    base, _ = trust.check_url(url, online_access=False, allow_http=False)
    assert base == url.rstrip("/")


def test_plain_http_to_another_computer_is_refused_unless_allowed(trust, errors):
    with pytest.raises(errors.PromptscapeError) as refused:
        trust.check_url("http://gpu-box:8765", online_access=True, allow_http=False)
    text = str(refused.value)
    assert "gpu-box:8765" in text and "unencrypted" in text and "https://" in text
    assert "Allow Unencrypted Connections" in text and "PROMPTSCAPE_ALLOW_HTTP=1" in text
    assert trust.check_url("http://gpu-box:8765", True, allow_http=True)[1] == "gpu-box:8765"
    assert trust.check_url("https://gpu-box", True, allow_http=False) == ("https://gpu-box", "gpu-box:443")


def test_another_computer_needs_online_access_and_a_url(trust, errors):
    with pytest.raises(errors.PromptscapeError, match="online access"):
        trust.check_url("https://10.0.0.7:8765", online_access=False, allow_http=True)
    for bad in ("gpu-box:8765", "ftp://gpu-box", "http://gpu-box:99999"):
        with pytest.raises(errors.PromptscapeError, match="server:"):
            trust.check_url(bad, True, True)


# --- result file names and the seed -----------------------------------------------------------------

WORLD_FILES = {"exr": "world.exr", "hdr": "world.hdr", "preview": "world-preview.png"}


def test_result_files_land_in_the_folder_under_local_names(trust, tmp_path):
    (tmp_path / "world-sky-7.exr").write_bytes(b"earlier")
    found = trust.result_paths(WORLD_FILES, "world", tmp_path, "world-sky-7")
    assert {role: name for role, (name, _) in found.items()} == WORLD_FILES
    assert found["exr"][1] == tmp_path.resolve() / "world-sky-7-2.exr"  # never over an earlier result
    assert all(path.parent == tmp_path.resolve() for _, path in found.values())
    depth = trust.result_paths(
        {"exr": "world-depth.exr", "png": "world-depth.png", "arrays": "world-depth.npz"},
        "mesh",
        tmp_path,
        "w",
    )
    assert depth["arrays"][1].name == "w-depth.npz"


@pytest.mark.parametrize(
    "files",
    [
        {**WORLD_FILES, "exr": "../../../escape.exr"},
        {**WORLD_FILES, "exr": "..\\..\\..\\escape.exr"},
        {**WORLD_FILES, "exr": "/etc/passwd"},
        {**WORLD_FILES, "exr": "world.exr/../../x.exr"},
        {**WORLD_FILES, "hdr": "world.exr"},  # one role under another's name
        {**WORLD_FILES, "preview": "world-preview.png\x00.exe"},
        {**WORLD_FILES, "exr": 7},
        {**WORLD_FILES, "script": "world.py"},  # a role a world does not have
        {"exr": "world.exr"},  # roles missing
        ["world.exr"],
    ],
)
def test_hostile_file_names_are_refused_before_anything_is_written(trust, failed, tmp_path, files):
    with pytest.raises(failed, match=r"server|files"):
        trust.result_paths(files, "world", tmp_path / "out", "world-sky-7")
    assert not tmp_path.joinpath("out").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("stem", ["../up", "world/../../x", "World-X", "", "a" * 200, "..", "c:\\x"])
def test_a_local_stem_that_is_not_a_slug_is_refused(trust, failed, tmp_path, stem):
    with pytest.raises(failed, match="not a plain name"):
        trust.result_paths(WORLD_FILES, "world", tmp_path, stem)


def test_a_symlink_out_of_the_folder_is_refused(trust, failed, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "world-sky-7.exr").symlink_to(tmp_path / "elsewhere.exr")  # dangling: "free" to a naive check
    with pytest.raises(failed, match="outside"):
        trust.result_paths(WORLD_FILES, "world", folder, "world-sky-7")


@pytest.mark.parametrize("seed", ["../../x", "1e5", "-1", "", None, True, 3.5, str(2**40), "12 ", "٣"])
def test_the_seed_must_be_a_whole_number(trust, failed, seed):
    with pytest.raises(failed, match="seed"):
        trust.seed_of({"seed": seed})


def test_seeds_and_metadata_become_plain_values(trust, failed):
    assert trust.seed_of({"seed": "11"}) == 11 and trust.seed_of({"seed": 0}) == 0
    assert trust.checked_metadata({"seed": 3, "prompt": "x" * 5000}) == {"seed": "3", "prompt": "x" * 2000}
    for hostile in ([1], {"a": {"b": 1}}, {str(i): "" for i in range(100)}):
        with pytest.raises(failed, match="metadata"):
            trust.checked_metadata(hostile)


# --- mesh arrays ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_mesh(mesh_module):
    distance = np.full((32, 64), 5.0, np.float32)
    return mesh_module.build_world_mesh(distance, 16, 8)


def fields(mesh, **changed):
    values = {"positions": mesh.positions, "corners": mesh.corners, "sizes": mesh.sizes, "uvs": mesh.uvs,
              "split": mesh.split}  # fmt: skip
    return {**values, **changed}


def test_a_built_mesh_passes_the_check_unchanged(trust, good_mesh):
    checked = trust.checked_mesh(**fields(good_mesh))
    for name in ("positions", "corners", "sizes", "uvs"):
        np.testing.assert_array_equal(getattr(checked, name), getattr(good_mesh, name))
    assert checked.split == good_mesh.split


def _hostile_meshes(mesh):
    vertices = len(mesh.positions)
    nan = mesh.positions.copy()
    nan[3, 1] = np.nan
    past = mesh.corners.copy()
    past[-1] = vertices  # one past the last vertex
    negative = mesh.corners.copy()
    negative[0] = -1
    short = mesh.sizes.copy()
    short[0] = 2
    return {
        "corner past the vertices": {"corners": past},
        "negative corner": {"corners": negative},
        "sizes not summing to the corners": {"sizes": mesh.sizes[:-1]},
        "a face of 2 corners": {"sizes": short},
        "NaN position": {"positions": nan},
        "far position": {"positions": mesh.positions * 1e9},
        "positions not (V, 3)": {"positions": mesh.positions.reshape(-1)},
        "float corners": {"corners": mesh.corners.astype(np.float32)},
        "uvs not per corner": {"uvs": mesh.uvs[:-1]},
        "object arrays": {"sizes": mesh.sizes.astype(object)},
        "too many faces": {"sizes": np.full(10**7, 4, np.int32), "corners": np.zeros(4 * 10**7, np.int32)},
        "a list": {"corners": list(mesh.corners)},
        "split not a count": {"split": np.array([1, 2])},
    }


@pytest.mark.parametrize(
    "case",
    ["corner past the vertices", "negative corner", "sizes not summing to the corners", "a face of 2 corners",
     "NaN position", "far position", "positions not (V, 3)", "float corners", "uvs not per corner",
     "object arrays", "too many faces", "a list", "split not a count"],
)  # fmt: skip
def test_inconsistent_mesh_arrays_are_refused_in_words(trust, failed, good_mesh, case):
    with pytest.raises(failed, match="world mesh is inconsistent"):
        trust.checked_mesh(**fields(good_mesh, **_hostile_meshes(good_mesh)[case]))


def _npz(path, **arrays):
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    return path


def test_depth_arrays_round_trip_through_the_check(trust, good_mesh, tmp_path):
    distance = np.full((32, 64), 5.0, np.float32)
    path = _npz(tmp_path / "a.npz", distance=distance, **fields(good_mesh, split=np.array(good_mesh.split)))
    found, mesh = trust.read_depth_arrays(path)
    np.testing.assert_array_equal(found, distance)
    np.testing.assert_array_equal(mesh.corners, good_mesh.corners)
    assert trust.read_depth_arrays(_npz(tmp_path / "b.npz", distance=distance))[1] is None


def test_hostile_depth_arrays_are_refused_before_they_are_read(trust, failed, good_mesh, tmp_path):
    header = io.BytesIO()  # a member that claims a billion floats: refused from its header alone
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("distance.npy", header.getvalue())
    with pytest.raises(failed, match="too large"):
        trust.read_depth_arrays(tmp_path / "huge.npz")
    distance = np.full((32, 64), 5.0, np.float32)
    cases = {
        "square.npz": {"distance": np.ones((32, 32), np.float32)},
        "nan.npz": {"distance": np.full((32, 64), np.nan, np.float32)},
        "extra.npz": {"distance": distance, "script": np.zeros(3)},
        "half.npz": {"distance": distance, "positions": good_mesh.positions},
    }
    for name, arrays in cases.items():
        with pytest.raises(failed, match=r"distance|depth arrays"):
            trust.read_depth_arrays(_npz(tmp_path / name, **arrays))
    with open(tmp_path / "pickle.npz", "wb") as file:
        np.savez(file, distance=np.array([{"x": 1}], dtype=object))
    with pytest.raises(failed):
        trust.read_depth_arrays(tmp_path / "pickle.npz")
