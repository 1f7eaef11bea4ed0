#!/usr/bin/env python3
"""Hardlink the files a new virtual environment has byte for byte in common with its siblings.

Usage: python tools/share_venv_files.py VENV

Every environment of this clone (.venv, .venv-4.2, .venv-5.2, .venv-server) carries the same CUDA
build of torch: about 5 GB of torch, triton and nvidia libraries each. CI's disk is shared with other
work, and four copies once filled it. Linking identical files keeps one copy on disk. It is safe for
later installs: pip replaces or removes a file by unlinking it, so changing one environment never
changes another.

The siblings are the `.venv*` folders next to VENV whose install finished (their `.installed` stamp
exists). Only files of 1 MiB and more are considered: they hold nearly all of the bytes.
"""

import filecmp
import os
import sys
from pathlib import Path

LARGE = 1 << 20


def site_packages(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python3.*/site-packages"))
    return found[0] if found else None


def large_files(root: Path):
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink() and path.stat().st_size >= LARGE:
                yield path


def share(venv: Path, siblings: list[Path]) -> tuple[int, int]:
    """Link `venv`'s large files to identical ones in `siblings`; return (files linked, bytes saved)."""
    target = site_packages(venv)
    known: dict[tuple[str, int], list[Path]] = {}
    for sibling in siblings:
        root = site_packages(sibling)
        for path in large_files(root) if root else ():
            known.setdefault((str(path.relative_to(root)), path.stat().st_size), []).append(path)
    linked = saved = 0
    for path in large_files(target) if target else ():
        stat = path.stat()
        for other in known.get((str(path.relative_to(target)), stat.st_size), []):
            if other.stat().st_ino == stat.st_ino:
                break
            if filecmp.cmp(path, other, shallow=False):
                temporary = path.with_name(path.name + ".linking")
                os.link(other, temporary)
                os.replace(temporary, path)
                linked, saved = linked + 1, saved + stat.st_size
                break
    return linked, saved


def main() -> None:
    venv = Path(sys.argv[1]).resolve()
    siblings = [
        folder
        for folder in sorted(venv.parent.glob(".venv*"))
        if folder != venv and (folder / ".installed").exists()
    ]
    linked, saved = share(venv, siblings)
    gib = saved / 2**30
    print(f"{venv.name}: {linked} files shared with {len(siblings)} other environments, {gib:.1f} GiB saved")


if __name__ == "__main__":
    main()
