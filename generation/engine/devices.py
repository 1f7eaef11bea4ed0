"""Which device and number format a pipeline runs in, how much memory it may use, and how it is placed."""

import gc
import importlib.util
import logging
import os
import sys

from ..errors import InvalidRequest
from . import memory_plan

log = logging.getLogger(__name__)


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


def can_offload() -> bool:
    """Whether model CPU offload is possible here (it needs accelerate)."""
    return importlib.util.find_spec("accelerate") is not None


def place_pipeline(pipe, device: str, placement: str) -> str:
    """Put the pipeline on its device as the memory plan says; return a short description.

    "device": all of it there; "offload": model CPU offload (only the running part on the GPU);
    "group": the transformer families' blocks one at a time (diffusers' group offloading);
    "sequential": one layer at a time. The VAE stays on the device under sequential offload: it is small,
    and the tiled decode runs its layers one by one. MPS also gets attention slicing.
    """
    if placement == "offload":
        pipe.enable_model_cpu_offload(device=device)
        description = "model CPU offload"
    elif placement == "group":
        import torch

        # Block by block, the next block's transfer overlapping the current one's work on a CUDA stream;
        # the VAE stays on the device (small, and the tiled decode runs its layers one by one).
        pipe.enable_group_offload(
            torch.device(device), offload_type="block_level", num_blocks_per_group=1,
            use_stream=device == "cuda", exclude_modules=["vae"],
        )  # fmt: skip
        pipe.vae.to(device)
        description = "group offload"
    elif placement == "sequential":
        pipe._exclude_from_cpu_offload = [*pipe._exclude_from_cpu_offload, "vae"]
        pipe.enable_sequential_cpu_offload(device=device)
        description = "sequential CPU offload"
    else:
        pipe.to(device)
        description = device
    if device == "mps":
        pipe.enable_attention_slicing()
        description += " + attention slicing"
    return description


def memory_budget(device: str) -> int | None:
    """Bytes a job may use on `device`: what it reports free (plus what this process already holds and
    can reuse), capped by the process's memory fraction and by PROMPTSCAPE_GPU_MEMORY_GB on GPUs.

    CUDA: free memory; MPS: the system's recommended working set; CPU: available RAM. None when unknown.
    """
    import torch

    cap = _cap_gb()
    if device == "cuda":
        free, total = torch.cuda.mem_get_info()
        # What this process holds counts as free: its cached blocks are reused, a new pipeline replaces
        # the cached one, and the same pipeline's weights are part of the estimate.
        free += torch.cuda.memory_reserved()
        return memory_plan.budget(free, total, torch.cuda.get_per_process_memory_fraction(), cap)
    if device == "mps":
        return memory_plan.budget(torch.mps.recommended_max_memory(), cap_gb=cap)
    return _available_ram()


def _cap_gb() -> float | None:
    cap = os.environ.get("PROMPTSCAPE_GPU_MEMORY_GB")
    if not cap:
        return None
    try:
        return float(cap)
    except ValueError:
        log.warning("PROMPTSCAPE_GPU_MEMORY_GB=%r is not a number of GB; ignored", cap)
        return None


def _available_ram() -> int | None:
    return memory_plan.available_ram_bytes()


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
