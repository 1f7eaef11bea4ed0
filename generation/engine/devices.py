"""Which device and number format a pipeline runs in, and how it saves memory on small GPUs."""

import gc
import importlib.util
import logging
import sys

from ..errors import InvalidRequest

log = logging.getLogger(__name__)

# Below this much GPU memory, SDXL at 2048x1024 does not fit whole: trade speed for memory.
_SMALL_GPU_BYTES = 8 * 1024**3


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def mps_available() -> bool:
    import torch

    return _mps_available(torch)


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(name: str) -> str:
    """A concrete torch device name for "auto", "cuda", "mps" or "cpu": auto tries cuda, then mps, then cpu.

    Raises InvalidRequest when a device is asked for that this machine does not have.
    """
    if name == "auto":
        if cuda_available():
            return "cuda"
        return "mps" if mps_available() else "cpu"
    if name == "cuda" and not cuda_available():
        raise InvalidRequest(
            "device is cuda but no CUDA GPU is usable here (no NVIDIA GPU, or torch is a CPU build): "
            "choose auto or cpu in Preferences > Add-ons > Promptscape"
        )
    if name == "mps" and not mps_available():
        raise InvalidRequest("device is mps but Apple Metal is not available here: choose auto or cpu")
    if name not in ("cuda", "mps", "cpu"):
        raise InvalidRequest(f"device is {name!r}: use one of auto, cuda, mps, cpu")
    return name


def resolve_precision(device: str, precision: str) -> str:
    """A concrete precision name: "auto" means fp16 on a GPU and fp32 on the CPU."""
    if precision == "auto":
        return "fp32" if device == "cpu" else "fp16"
    if precision not in ("fp16", "bf16", "fp32"):
        raise InvalidRequest(f"precision is {precision!r}: use one of auto, fp16, bf16, fp32")
    if precision == "fp16" and device == "cpu":
        log.warning("fp16 on the CPU is slow and some layers may lack fp16 kernels; fp32 is the safe choice")
    return precision


def torch_dtype(precision: str):
    """The torch dtype for a concrete precision name."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def gpu_memory_bytes(device: str) -> int | None:
    """Total memory of the CUDA GPU, or None on other devices."""
    if device != "cuda":
        return None
    import torch

    return torch.cuda.get_device_properties(0).total_memory


def apply_memory_options(pipe, device: str) -> str:
    """Move the pipeline to its device, saving memory on small GPUs; return a short description.

    With accelerate present, a small CUDA GPU gets model CPU offload (only the running part is on the GPU);
    small GPUs and MPS also get attention slicing.
    """
    total = gpu_memory_bytes(device)
    small = total is not None and total < _SMALL_GPU_BYTES
    if small and importlib.util.find_spec("accelerate") is not None:
        pipe.enable_model_cpu_offload()
        placement = "model CPU offload"
    else:
        pipe.to(device)
        placement = device
    if small or device == "mps":
        pipe.enable_attention_slicing()
        placement += " + attention slicing"
    return placement


def free_memory() -> None:
    """Collect garbage and give cached GPU memory back, after an unload or an out-of-memory error.

    Never imports torch: without it nothing is on a GPU, and importing it (seconds, GBs) from the UI thread
    to free memory would do the opposite.
    """
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if _mps_available(torch):
        torch.mps.empty_cache()
