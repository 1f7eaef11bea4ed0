"""tools/share_venv_files.py: identical large files of sibling environments end up as one file on disk."""

import os

import share_venv_files

MIB = 1 << 20


def make_venv(parent, name, files, python="3.11", installed=True):
    site = parent / name / "lib" / f"python{python}" / "site-packages"
    for relative, content in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(content)
    if installed:
        (parent / name / ".installed").touch()
    return parent / name


def test_identical_files_are_linked_and_the_rest_left_alone(tmp_path):
    same, other = b"a" * (2 * MIB), b"b" * (2 * MIB)
    make_venv(tmp_path, ".venv", {"nvidia/lib/cublas.so": same, "torch/lib/c.so": same, "small.py": b"x"})
    make_venv(tmp_path, ".venv-unfinished", {"nvidia/lib/cublas.so": same}, installed=False)
    new = make_venv(
        tmp_path,
        ".venv-5.2",
        {"nvidia/lib/cublas.so": same, "torch/lib/c.so": other, "small.py": b"x"},
        python="3.13",  # the site-packages layout below lib/ is what must match, not the Python
    )
    linked, saved = share_venv_files.share(new, [tmp_path / ".venv"])
    site, old_site = new / "lib/python3.13/site-packages", tmp_path / ".venv/lib/python3.11/site-packages"
    assert (linked, saved) == (1, 2 * MIB)
    assert os.path.samefile(site / "nvidia/lib/cublas.so", old_site / "nvidia/lib/cublas.so")
    assert (site / "torch/lib/c.so").read_bytes() == other  # same name, other bytes: its own file
    assert not os.path.samefile(site / "small.py", old_site / "small.py")  # small files are not worth it
    assert not list(site.rglob("*.linking"))
    assert share_venv_files.share(new, [tmp_path / ".venv"]) == (0, 0)  # a second run finds them linked


def test_siblings_are_finished_environments_beside_it(tmp_path, monkeypatch, capsys):
    make_venv(tmp_path, ".venv", {"big.so": b"c" * MIB})
    make_venv(tmp_path, ".venv-unfinished", {"big.so": b"c" * MIB}, installed=False)
    new = make_venv(tmp_path, ".venv-4.2", {"big.so": b"c" * MIB}, installed=False)
    monkeypatch.setattr("sys.argv", ["share_venv_files.py", str(new)])
    share_venv_files.main()
    assert "1 files shared with 1 other environments" in capsys.readouterr().out
    unfinished = tmp_path / ".venv-unfinished/lib/python3.11/site-packages/big.so"
    assert os.stat(unfinished).st_nlink == 1
