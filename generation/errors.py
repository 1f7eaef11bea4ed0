"""The errors a user can cause, each with a message that says what to do.

Code that catches `PromptscapeError` shows `str(error)` to the artist as it is; anything else is a bug
and is shown with its traceback in the log.
"""


class PromptscapeError(Exception):
    """Base of every error the user can cause or fix."""


class InvalidRequest(PromptscapeError, ValueError):
    """A request field is out of range; the message names the field and the allowed values."""


class ModelNotFound(PromptscapeError):
    """The model source is not a diffusers folder, a .safetensors file or a cached model id."""


class ModelLoadError(PromptscapeError):
    """The model exists but cannot be loaded (corrupt, truncated, unsupported kind, unsafe format)."""


class MissingDependency(PromptscapeError, ImportError):
    """torch, diffusers or another package needed for this action is not importable."""


class GenerationFailed(PromptscapeError):
    """The pipeline ran but did not give a usable image (out of memory, NaN output, ...)."""


class Cancelled(PromptscapeError):
    """The user cancelled the job."""


class InvalidImage(PromptscapeError, ValueError):
    """An input image cannot be used as asked (wrong shape, aspect or values)."""


def missing_dependency(name: str, needed_for: str = "") -> MissingDependency:
    """The error for a package that cannot be imported, saying where the artist installs it.

    `needed_for` names what wanted it ("LoRAs", "the self-test") when the action does not make that obvious.
    """
    purpose = f" (needed for {needed_for})" if needed_for else ""
    return MissingDependency(
        f"{name} is not installed{purpose}: install it in Preferences > Add-ons > Promptscape > Dependencies"
    )
