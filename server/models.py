"""Which models clients may name: the subfolders of the models folder and curated ids in the HF cache.

The same for the other options that would carry a path: VAEs (curated ids in the cache, or subfolders of
the models folder's vaes/), upscalers (curated ids or files in its upscalers/) and depth models (the
curated id, or subfolders of its depth/). Clients never send a server path: a name is looked up here,
and only what is found is loaded.
"""

import re
from pathlib import Path

from generation.engine.triposr_checkpoint import DEFAULT_MODEL as DEFAULT_PROP_MODEL
from generation.engine.triposr_checkpoint import resolve_prop_model
from generation.errors import InvalidRequest, ModelNotFound
from generation.setup import depth_models, model_catalog, upscalers

_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,127}(/[\w.-]{1,128})?$")


class AllowedModels:
    """The models this server offers, by the names clients use."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder).resolve() if folder else None

    def _folders(self) -> dict[str, Path]:
        if self.folder is None or not self.folder.is_dir():
            return {}
        return {
            path.name: path
            for path in sorted(self.folder.iterdir())
            if path.is_dir() and not path.name.startswith(".") and (path / "model_index.json").is_file()
        }

    def _catalog(self) -> list[str]:
        curated = {entry.repo_id for entry in model_catalog.CURATED}
        return [repo_id for repo_id in model_catalog.cached_models() if repo_id in curated]

    def names(self) -> list[dict]:
        """What GET /v1/models lists."""
        folders = [{"name": name, "source": "folder"} for name in self._folders()]
        return folders + [{"name": repo_id, "source": "catalog"} for repo_id in self._catalog()]

    def _depth_folders(self) -> dict[str, Path]:
        root = self.folder / "depth" if self.folder else None
        if root is None or not root.is_dir():
            return {}
        return {
            path.name: path
            for path in sorted(root.iterdir())
            if path.is_dir() and not path.name.startswith(".") and (path / "config.json").is_file()
        }

    def depth_names(self) -> list[dict]:
        """The depth models GET /v1/models lists: the depth/ subfolders, then the curated default."""
        folders = [{"name": name, "source": "folder"} for name in self._depth_folders()]
        return [*folders, {"name": depth_models.DEFAULT, "source": "catalog"}]

    def depth_model(self, name: str) -> str:
        """The location of a depth model named by a client."""
        self.check_name("depth_model", name)
        folders = self._depth_folders()
        if name in folders:
            return str(folders[name])
        if name == depth_models.DEFAULT:
            return name  # loaded from the cache only; the engine says so when it is not there
        offered = ", ".join(entry["name"] for entry in self.depth_names())
        raise InvalidRequest(f"depth_model: this server does not offer {name!r}; it offers: {offered}")

    def resolve(self, name: str) -> str:
        """The location the engine loads for `name`; InvalidRequest for anything not offered."""
        self.check_name("model", name)
        folders = self._folders()
        if name in folders:
            return str(folders[name])
        if name in self._catalog():
            return name
        offered = ", ".join(entry["name"] for entry in self.names()) or "none"
        raise InvalidRequest(f"model: this server does not offer {name!r}; it offers: {offered}")

    def vae(self, name: str) -> str:
        """The location of a replacement VAE named by a client; "" for the model's own."""
        if not name:
            return ""
        self.check_name("vae", name)
        folder = self.folder / "vaes" / name if self.folder else None
        if folder is not None and (folder / "config.json").is_file():
            return str(folder)
        if name in {vae.repo_id for vae in model_catalog.CURATED_VAES}:
            return name  # the engine loads it from the cache only, and says so when it is not there
        raise InvalidRequest(f"vae: this server does not offer {name!r}; leave it empty for the model's own")

    def upscaler(self, name: str) -> tuple[str, Path | None]:
        """(the id the engine resolves, the folder its file is in) for an upscaler named by a client."""
        self.check_name("upscaler", name)
        folder = self.folder / "upscalers" if self.folder else None
        if name.lower() in upscalers.CURATED:
            return name, folder
        for suffix in (".safetensors", ".pth"):
            if folder is not None and (folder / (name + suffix)).is_file():
                return str(folder / (name + suffix)), None
        raise InvalidRequest(f"upscaler: this server does not offer {name!r}; use {upscalers.DEFAULT}")

    def prop_model(self, name: str) -> str:
        """The weights file of a prop model named by a client: a subfolder of the models folder's props/
        (named as the folder), or TripoSR's id from the cache."""
        self.check_name("prop_model", name)
        folder = self.folder / "props" / name if self.folder else None
        try:
            if folder is not None and folder.is_dir():
                return str(resolve_prop_model(str(folder)))
            if name == DEFAULT_PROP_MODEL:
                return str(resolve_prop_model(name))
        except ModelNotFound as error:
            raise InvalidRequest(f"prop_model: {error}") from None
        raise InvalidRequest(f"prop_model: this server does not offer {name!r}; use {DEFAULT_PROP_MODEL}")

    @staticmethod
    def check_name(what: str, name) -> None:
        """InvalidRequest unless `name` is a plain name (letters, digits, . _ -, one /), never a path."""
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
            raise InvalidRequest(
                f"{what}: name one of this server's {what}s, not a path; {str(name)[:80]!r} is not a name"
            )
