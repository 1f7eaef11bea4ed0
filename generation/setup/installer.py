"""Installing torch, diffusers and transformers for Blender's own Python, into a folder of ours.

pip runs as a subprocess of Blender's Python (`sys.executable`) with `--target` a staging folder beside
the final one. Only a complete install is renamed into place and put on `sys.path`: a failed, cancelled
or killed install leaves the previous state exactly as it was. The folder lives in the extension's user
folder, so it survives extension updates, and nothing is written into Blender or the user's site.
"""

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import site
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from ..errors import PromptscapeError
from . import dependencies

log = logging.getLogger(__name__)

# The torch Promptscape installs, by the Python the running Blender ships: 3.11 in Blender 4.2 to 5.0, 3.13
# from 5.1 (5.2 LTS). torch 2.14.1 and torchvision 0.29.1 were checked for CPython 3.11 and 3.13 (the ones
# the test matrix runs); they move together, as spandrel imports torchvision, which must match torch.
TORCH_FOR_PYTHON = {(3, 10): "torch==2.14.1", (3, 11): "torch==2.14.1", (3, 12): "torch==2.14.1"}
TORCH_FOR_PYTHON[(3, 13)] = "torch==2.14.1"
# The versions Promptscape is tested with; a newer diffusers can rename what we call. numpy is never
# installed: Blender's own is held (see pip_command), 1.x or 2.x, whichever this Blender ships.
PINNED = (
    "torchvision==0.29.1",  # the one built for torch 2.14.1, from the same index as torch
    "spandrel==0.4.2",  # reads upscaler architectures (ESRGAN family)
    "diffusers==0.42.1",
    "transformers==5.23.0",
    "accelerate==1.15.0",
    "safetensors==0.8.0",
    "peft==0.21.2",  # LoRAs
    "huggingface_hub==2.4.0",
    "tokenizers==0.23.3",
    "OpenEXR==3.5.3",  # writes a world's EXR in threads, about twice as fast as the numpy writer
    "gguf==0.19.0",  # GGUF transformers
    # 4- and 8-bit transformers on NVIDIA GPUs; Apple Metal has no bitsandbytes (quantize refuses there).
    "bitsandbytes==0.50.2; platform_system != 'Darwin'",
    # Props: marching cubes; wheels for CPython 3.11 (numpy 1.26) and 3.13 (numpy 2), with their scipy.
    "scikit-image==0.26.0",
    "scipy==1.17.1",
    "xatlas==0.0.11",  # props: UV unwrap for texture=True
)
# Where each torch build comes from. "default" is PyPI's: CUDA on Linux, MPS on macOS, CPU on Windows.
TORCH_BUILDS = {
    "default": None,
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cu126": "https://download.pytorch.org/whl/cu126",
    "cu128": "https://download.pytorch.org/whl/cu128",
}
COMPLETE_MARKER = ".promptscape-complete"


def requirements(python: tuple[int, int] = sys.version_info[:2]) -> tuple[str, ...]:
    """What Install Dependencies installs for a Blender running `python`: a torch built for it, then the
    rest. A Python with no tested torch build is refused in words, before pip downloads gigabytes."""
    torch = TORCH_FOR_PYTHON.get(tuple(python))
    if torch is None:
        known = ", ".join(f"{major}.{minor}" for major, minor in sorted(TORCH_FOR_PYTHON))
        raise PromptscapeError(
            f"This Blender runs Python {python[0]}.{python[1]}, for which Promptscape knows no tested torch "
            f"build (it knows Python {known}): update Promptscape, or set Use Existing Environment to a "
            "site-packages folder that has torch and diffusers for this Python"
        )
    return (torch, *PINNED)


TAIL_LINES = 200


def is_complete(folder: Path) -> bool:
    """True when `folder` holds a finished install (the marker is written last)."""
    return (Path(folder) / COMPLETE_MARKER).is_file()


def activate(folder: Path) -> bool:
    """Put a finished install on sys.path; False (and nothing changed) when it is not complete."""
    if not is_complete(Path(folder)):
        return False
    add_to_path(folder)
    return True


def add_to_path(folder: Path):
    """Append `folder` to sys.path, after everything Blender ships, so Blender's own modules win."""
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        importlib.invalidate_caches()
        dependencies.forget()


def deactivate(folder: Path):
    """Take `folder` off sys.path (modules already imported from it stay loaded until Blender restarts)."""
    while str(folder) in sys.path:
        sys.path.remove(str(folder))
        dependencies.forget()


def remove(folder: Path):
    """Uninstall: take the folder off sys.path and delete it, with any staging folder left by a crash."""
    deactivate(folder)
    folder = Path(folder)
    leftovers = [*folder.parent.glob(folder.name + ".staging*"), *folder.parent.glob(folder.name + ".old")]
    for path in (folder, *leftovers):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def clashes(folder: Path) -> list[str]:
    """Packages imported from somewhere that shadows our install, such as a torch in the user's site."""
    problems = []
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    for name in ("torch", "diffusers", "transformers"):
        spec = importlib.util.find_spec(name) if name not in sys.modules else sys.modules[name].__spec__
        origin = Path(spec.origin).parent.parent if spec and spec.origin else None
        if origin is None or origin == Path(folder):
            continue
        if user_site and str(origin).startswith(user_site):
            problems.append(
                f"{name} is loaded from your user site ({origin}) and may clash with Promptscape's"
            )
        elif is_complete(Path(folder)) and (Path(folder) / name).is_dir():
            problems.append(f"{name} is loaded from {origin}, not from Promptscape's folder")
    return problems


def check_site_packages(folder: Path) -> list[str]:
    """Problems with using an existing Python environment's site-packages folder instead of installing."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    problems = [f"{folder} has no {name}" for name in ("torch", "diffusers") if not (folder / name).is_dir()]
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    compiled = [path.name for path in (folder / "torch").glob("_C*") if path.suffix in (".so", ".pyd")]
    if compiled and not any(tag in name for name in compiled):
        problems.append(
            f"the torch in {folder} is built for another Python ({compiled[0]}); "
            f"this Blender runs Python {sys.version_info.major}.{sys.version_info.minor}"
        )
    return problems


def pip_command(
    staging: Path, requirements, torch_build: str = "default", find_links: Path | None = None
) -> list[str]:
    """The pip command line: Blender's Python, into `staging`, with numpy held at Blender's own version."""
    command = [sys.executable, "-m", "pip", "install", "--target", str(staging), "--no-input"]
    command += ["--disable-pip-version-check", "--no-cache-dir", "--progress-bar", "off"]
    if find_links is not None:
        # A folder of wheels (an offline or studio mirror): no index, no network.
        command += ["--no-index", "--find-links", str(find_links)]
    elif TORCH_BUILDS.get(torch_build):
        command += ["--extra-index-url", TORCH_BUILDS[torch_build]]
    constraints = staging.parent / (staging.name + "-constraints.txt")
    numpy_version = _installed_version("numpy")
    # A second numpy under ours would shadow nothing (Blender's comes first) but can break torch's ABI.
    constraints.write_text(f"numpy=={numpy_version}\n" if numpy_version else "")
    return [*command, "--constraint", str(constraints), *requirements]


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


class Install:
    """One pip run in the background: its output lines, a rough progress fraction, and the outcome."""

    def __init__(self, folder: Path, packages=(), torch_build: str = "default", find_links=None):
        self.folder = Path(folder)
        self.staging = self.folder.parent / f"{self.folder.name}.staging-{os.getpid()}"
        self.requirements = tuple(packages) or requirements()  # ours unless the caller names others
        self.torch_build = torch_build
        self.find_links = find_links
        self.state = "running"  # running, done, failed, cancelled
        self.message = ""
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)
        self.collected = 0
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="promptscape-pip", daemon=True)

    @property
    def done(self) -> bool:
        return self.state != "running"

    @property
    def fraction(self) -> float:
        """A rough progress fraction: packages collected, then installing, then done."""
        if self.done:
            return 1.0
        if any(line.startswith("Installing collected packages") for line in self.lines):
            return 0.9
        return min(0.8, 0.8 * self.collected / max(len(self.requirements) * 4, 1))

    def start(self) -> "Install":
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        command = pip_command(self.staging, self.requirements, self.torch_build, self.find_links)
        log.info("Running %s", " ".join(command))
        env = dict(os.environ, PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
        )
        self._thread.start()
        return self

    def cancel(self):
        self._cancelled = True
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def _run(self):
        for line in self._process.stdout:
            line = line.rstrip()
            if line:
                self.lines.append(line)
                self.collected += line.startswith(("Collecting", "Processing"))
        code = self._process.wait()
        try:
            if self._cancelled:
                self.state, self.message = "cancelled", "Install cancelled; nothing was changed"
            elif code != 0:
                tail = "\n".join(list(self.lines)[-8:])
                self.state, self.message = "failed", f"pip failed (exit {code}); nothing was changed:\n{tail}"
            else:
                self._swap_into_place()
                self.state, self.message = "done", f"Installed into {self.folder}"
        except OSError as error:
            self.state = "failed"
            self.message = (
                f"Could not move the install into {self.folder} ({error}); restart Blender and retry"
            )
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.with_name(self.staging.name + "-constraints.txt").unlink(missing_ok=True)

    def _swap_into_place(self):
        (self.staging / COMPLETE_MARKER).write_text("\n".join(self.requirements) + "\n")
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            self.folder.rename(old)
        self.staging.rename(self.folder)
        shutil.rmtree(old, ignore_errors=True)
