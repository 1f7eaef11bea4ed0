"""How a job fits in memory: a plan chosen before anything loads, from an estimate of its peak.

Pure: figures in, a plan out, so it is tested with given memory figures and the sidebar can show an
estimate without torch. Plans, most memory first: "full" (everything on the device, plain decode),
"tiled" (the decode in wrap-exact tiles), "offload" (model CPU offload, tiles, feature maps in RAM),
"sequential" (one layer at a time on the device). Later stages (pole inpainting, upscaling, depth)
describe their own candidates and ask `choose` too.

Every plan also needs the computer's memory (RAM): the weights that offload keeps there, the feature maps
a tiled pass stores there, everything on a CPU, and the finished image's post-processing. A plan must fit
both: the device's budget and the available RAM less RAM_RESERVE (`ram_budget`). The caller passes the
available RAM (`available_ram_bytes` reads it), so tests give it as a figure.
"""

import os
import sys
from dataclasses import dataclass, replace

GIB = 2**30
MEMORY_MODES = ("auto", "full", "low")
PLANS = ("full", "tiled", "offload", "group", "sequential")
# Allocator slack and what the figures leave out (CUDA context, scheduler state): the estimate times this.
MARGIN = 1.15
LOW_TILE = 1024  # memory "low": tiles no larger than this, on every device
TILES = (1024, 768, 512, 384, 256, 128)
# Activations in elements per image pixel. Denoising (two images for guidance) and the plain decode were
# measured at SDXL size (2048x1024, H200: 7.35 - 6.57 GiB and 18.28 - 6.57 GiB in fp32); the tiled decode
# keeps three whole maps (256 + 128 + 128 channels at full size) and works on one tile like a plain decode;
# lean, it recomputes the largest maps where read and keeps 64 + 128 channels (about 1.4x the time).
DENOISE_PER_PIXEL = 200
PLAIN_DECODE_PER_PIXEL = 1480
TILED_MAPS_PER_PIXEL = 512
LEAN_MAPS_PER_PIXEL = 192
# With sequential offload one layer's weights are on the device at a time: about 1% of the UNet.
SEQUENTIAL_SHARE = 0.01
# Group offloading (diffusers) keeps one block of a transformer or text encoder on the device and prefetches
# the next on a CUDA stream: two blocks, plus what sits outside the blocks (embeddings, about 10% of a
# language model with its large vocabulary, a few % of a transformer).
GROUP_BLOCKS_ON_DEVICE = 2
GROUP_OUTSIDE_SHARE = {"transformer": 0.03, "text": 0.12}
# A prop's shape stage (TripoSR at its 256³ grid) on a GPU: fp32 weights (1.7 GB) and chunked queries.
# An estimate until a GPU measures it (bench/prop.py).
PROP_SHAPE_BYTES = 6 * GIB
# RAM a plan leaves free: Blender's own scene and undo steps, other apps, the system. A plan over this is
# refused in words: past it the system kills Blender, and an unsaved scene is lost.
RAM_RESERVE_FRACTION = 0.15
RAM_RESERVE_MIN = 2 * GIB
# Writing the finished world (HDR, EXR, preview, report) holds about 4 float32 RGB copies of it (bench).
IMAGE_WORK_PER_PIXEL = 4 * 3 * 4


@dataclass(frozen=True)
class ModelSize:
    """Parameter counts of a pipeline's parts; `vae_upcast` when its VAE must decode in fp32 from fp16."""

    family: str
    unet: float
    text_encoders: float
    vae: float
    vae_upcast: bool = False
    native: int = 512
    measured: bool = False  # the figures behind its estimate were measured at real size
    blocks: int = 0  # a transformer's repeated blocks: group offloading moves them one at a time
    text_blocks: int = 0  # the same for its language-model text encoder
    # Loaded in 8 or 4 bits (bitsandbytes): the counts above are then parameters' worth of fp16 bytes, and
    # no plan moves its weights layer by layer (bitsandbytes' weights move whole, with their model).
    quantised: bool = False


# Published architectures (parameters): SD 1.x, SD 2.x (OpenCLIP-H text encoder), SDXL (two encoders).
FAMILIES = {
    "sd": ModelSize("sd", 859.5e6, 123.1e6, 83.65e6, native=512),
    "sd2": ModelSize("sd2", 865.9e6, 340.4e6, 83.65e6, native=768),
    "sdxl": ModelSize("sdxl", 2567.5e6, 817.8e6, 83.65e6, vae_upcast=True, native=1024, measured=True),
    # The transformers (denoiser in the "unet" field), from their model cards: Z-Image 6B with Qwen3-4B,
    # FLUX.2 klein 4B with Qwen3-4B, Qwen-Image 20B with Qwen2.5-VL-7B. Unmeasured: estimates until a GPU runs
    # them; a downloaded folder's own .safetensors headers replace them (model_size.size_of).
    # Blocks from their published configs: Z-Image 30 layers (+2 noise and 2 context refiners), klein 5
    # double and 20 single, Qwen-Image 60; Qwen3-4B 36 layers, Qwen2.5-VL-7B 28.
    "zimage": ModelSize("zimage", 6.15e9, 4.02e9, 83.8e6, native=1024, blocks=34, text_blocks=36),
    "flux2-klein": ModelSize("flux2-klein", 4.0e9, 4.02e9, 84.0e6, native=1024, blocks=25, text_blocks=36),
    "qwen-image": ModelSize("qwen-image", 20.4e9, 8.29e9, 127.0e6, native=1328, blocks=60, text_blocks=28),
}


@dataclass(frozen=True)
class Candidate:
    """One way to run a stage: its name, estimated peak on the device, and how it decodes."""

    name: str
    peak_bytes: int
    tile: int | None = None  # decode tile side in pixels; None for a plain decode
    storage: str | None = None  # where whole feature maps of a tiled pass live ("cpu" off the device)
    lean: bool = False  # the tiled pass recomputes its largest maps instead of storing them
    ram_bytes: int = 0  # estimated peak in the computer's memory (RAM)

    @property
    def placement(self) -> str:
        """Where the weights are: "device", or moved by "offload" or "sequential" offload."""
        return self.name if self.name in ("offload", "group", "sequential") else "device"


@dataclass(frozen=True)
class MemoryPlan:
    """The chosen way to run, with the estimate behind it; `fallbacks` are tried after out of memory."""

    name: str
    peak_bytes: int
    budget_bytes: int | None
    tile: int | None = None
    storage: str | None = None
    fallbacks: tuple[Candidate, ...] = ()
    placement: str = "device"  # the pipeline on the device whole, or with "offload" or "sequential"
    lean: bool = False

    def describe(self) -> str:
        """In words, for the panel and the job's metadata: "tiled (512 px), about 9.3 of 11.0 GB"."""
        how = f"{self.name} ({self.tile} px tiles{', lean' if self.lean else ''})" if self.tile else self.name
        budget = f" of {self.budget_bytes / GIB:.1f}" if self.budget_bytes is not None else ""
        return f"{how}, about {self.peak_bytes / GIB:.1f}{budget} GB"

    def fallback(self) -> "MemoryPlan | None":
        """The next plan's decode for the loaded pipeline, after running out of memory; None at the end."""
        if not self.fallbacks:
            return None
        first, *rest = self.fallbacks
        return replace(self, name=first.name, peak_bytes=first.peak_bytes, tile=first.tile,
                       storage=first.storage, lean=first.lean, fallbacks=tuple(rest))  # fmt: skip


class DoesNotFit(Exception):
    """Even the lowest plan needs more memory than the device has; the message says how much."""


class NotEnoughRam(DoesNotFit):
    """A plan fits the device but none fits the computer's memory (RAM); the message says how much."""


def ram_reserve(available_bytes: int) -> int:
    """The RAM a plan leaves free of `available_bytes`: RAM_RESERVE_FRACTION, at least RAM_RESERVE_MIN."""
    return int(max(RAM_RESERVE_MIN, RAM_RESERVE_FRACTION * available_bytes))


def ram_budget(available_bytes: int | None) -> int | None:
    """The RAM a plan may use: what is available less `ram_reserve`; None when unknown."""
    if available_bytes is None:
        return None
    return max(0, available_bytes - ram_reserve(available_bytes))


def available_ram_bytes() -> int | None:
    """The computer's available RAM, read cheaply: /proc/meminfo's MemAvailable on Linux, the free pages
    where os.sysconf knows them, GlobalMemoryStatusEx on Windows; None when none of these answers."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return _windows_available_ram()
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _windows_available_ram() -> int | None:
    import ctypes

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong)] + [
            (name, ctypes.c_ulonglong)
            for name in (
                "total",
                "available",
                "page_total",
                "page_free",
                "virtual_total",
                "virtual_free",
                "extended",
            )
        ]

    status = MemoryStatus(length=ctypes.sizeof(MemoryStatus))
    ok = ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))
    return int(status.available) if ok else None


def budget(free_bytes: int | None, total_bytes: int | None = None, fraction: float | None = None,
           cap_gb: float | None = None) -> int | None:  # fmt: skip
    """What a job may use: the free memory, capped by the process's memory fraction of the total and by
    a cap in GB (PROMPTSCAPE_GPU_MEMORY_GB); None when nothing is known."""
    limits = [free_bytes]
    if fraction is not None and fraction < 1.0 and total_bytes:
        limits.append(int(fraction * total_bytes))
    if cap_gb is not None:
        limits.append(int(cap_gb * GIB))
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None


def precision_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


def choose(
    candidates,
    budget_bytes: int | None,
    memory: str = "auto",
    what: str = "this job",
    ram_bytes: int | None = None,
) -> MemoryPlan:
    """The first candidate (most memory first) whose peak, with margin, fits the budget and whose RAM fits
    `ram_budget(ram_bytes)` (`ram_bytes`: the computer's available RAM; None: unknown, not budgeted).

    memory "full" takes the first candidate whatever the device budget (the RAM still counts); "low" skips
    plans without tiles. With no budget (unknown) the first candidate is taken. Raises DoesNotFit naming
    needed and available memory, NotEnoughRam when plans fit the device but none the RAM.
    """
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
    candidates = list(candidates)
    if memory == "low":
        candidates = [c for c in candidates if c.tile is not None and c.tile <= LOW_TILE]
    on_device = [
        index
        for index, candidate in enumerate(candidates)
        if memory == "full" or budget_bytes is None or candidate.peak_bytes * MARGIN <= budget_bytes
    ]
    if not on_device:
        lowest = min(candidates, key=lambda c: c.peak_bytes)
        raise DoesNotFit(
            f"{what} needs about {lowest.peak_bytes * MARGIN / GIB:.1f} GB even with the lowest memory plan "
            f"({lowest.name}) but {budget_bytes / GIB:.1f} GB is available: choose a smaller size, a "
            "smaller model, or close other apps using the GPU"
        )
    ram = ram_budget(ram_bytes)
    fitting = [index for index in on_device if ram is None or candidates[index].ram_bytes <= ram]
    if not fitting:
        leanest = min((candidates[index] for index in on_device), key=lambda c: c.ram_bytes)
        raise NotEnoughRam(
            f"{what} needs about {leanest.ram_bytes / GIB:.1f} GB of the computer's memory (RAM) even with "
            f"the leanest plan ({_name(leanest)}) but {ram_bytes / GIB:.1f} GB is free, of which "
            f"{ram_reserve(ram_bytes) / GIB:.1f} GB stays for Blender and the system: choose a smaller size "
            "or close other apps"
        )
    chosen = candidates[fitting[0]]
    later = [c for c in candidates[fitting[0] + 1 :] if ram is None or c.ram_bytes <= ram]
    return MemoryPlan(
        chosen.name,
        chosen.peak_bytes,
        budget_bytes,
        chosen.tile,
        chosen.storage,
        _fallbacks(chosen, later),
        chosen.placement,
        chosen.lean,
    )


def _name(candidate: Candidate) -> str:
    how = ", ".join(
        part
        for part in (f"{candidate.tile} px tiles" if candidate.tile else "", "lean" if candidate.lean else "")
        if part
    )
    return f"{candidate.name} ({how})" if how else candidate.name


def _kind(candidate: Candidate) -> tuple[str, bool]:
    """Plans that differ in what the device holds; a lean pass with its maps in RAM saves RAM, not device
    memory, so it is no further step after out of memory on the device."""
    return candidate.name, candidate.lean and candidate.storage is None


def _fallbacks(chosen: Candidate, later) -> tuple[Candidate, ...]:
    """After out of memory in a decode: a decode of each later plan, in smaller tiles than the last."""
    found, smallest = [], chosen.tile or LOW_TILE
    for candidate in later:
        kinds = {_kind(c) for c in (chosen, *found)}
        if candidate.tile is None or _kind(candidate) in kinds:
            continue
        found.append(replace(candidate, tile=max(min(candidate.tile, smallest // 2), TILES[-1])))
        smallest = found[-1].tile
    return tuple(found)


def weights_bytes(model: ModelSize, precision: str) -> float:
    return (model.unet + model.text_encoders + model.vae) * precision_bytes(precision)


def decode_bytes(model: ModelSize, precision: str) -> tuple[int, float]:
    """(bytes per decoded element, VAE weight bytes): SDXL's VAE decodes in fp32 when run in fp16."""
    size = 4 if model.vae_upcast and precision == "fp16" else precision_bytes(precision)
    return size, model.vae * size


def generation_candidates(
    model: ModelSize,
    width: int,
    height: int,
    device: str,
    precision: str,
    can_offload: bool = True,
    denoised_pixels: int | None = None,
) -> list[Candidate]:
    """Every plan for a text-to-image job, most memory first, with its estimated peak on `device`.
    `denoised_pixels`: how much of the image the UNet sees at once (all of it unless a stage works in
    windows, as the detail pass does)."""
    pixels = width * height
    size = precision_bytes(precision)
    element, vae_weights = decode_bytes(model, precision)
    weights = weights_bytes(model, precision) - model.vae * size
    denoise = DENOISE_PER_PIXEL * min(denoised_pixels or pixels, pixels) * size

    def tiled(tile: int) -> float:
        tile = min(tile, max(width, height))
        return PLAIN_DECODE_PER_PIXEL * min(tile * tile, pixels) * element

    plain_decode = PLAIN_DECODE_PER_PIXEL * pixels * element
    unet = model.unet * size
    # RAM: the finished image's post-processing on every plan; on a CPU the device is the RAM.
    image_work = IMAGE_WORK_PER_PIXEL * pixels

    def ram(peak: float) -> int:
        return int(image_work + (peak if device == "cpu" else 0))

    peak = weights + vae_weights + max(denoise, plain_decode)
    candidates = [Candidate("full", int(peak), ram_bytes=ram(peak))]
    tiles = [tile for tile in TILES if tile < 2 * max(width, height)] or [TILES[-1]]
    for lean, per_pixel in ((False, TILED_MAPS_PER_PIXEL), (True, LEAN_MAPS_PER_PIXEL)):
        for tile in tiles:
            peak = weights + vae_weights + max(denoise, per_pixel * pixels * element + tiled(tile))
            candidates.append(Candidate("tiled", int(peak), tile, lean=lean, ram_bytes=ram(peak)))
    if device == "cuda" and can_offload:
        # The VAE stays on the device (it is small); the feature maps of its tiled pass live in RAM, with
        # every weight (offload moves each model to the device only while it runs). Lean, the pass keeps
        # fewer maps there: the plan for a computer whose RAM cannot hold the stored maps of a large image.
        in_ram = weights_bytes(model, precision) + image_work
        for lean, per_pixel in ((False, TILED_MAPS_PER_PIXEL), (True, LEAN_MAPS_PER_PIXEL)):
            maps = int(in_ram + per_pixel * pixels * element)
            for tile in tiles:
                peak = max(unet + denoise, model.text_encoders * size) + vae_weights + tiled(tile)
                candidates.append(Candidate("offload", int(peak), tile, "cpu", lean, maps))
        if model.blocks and model.text_blocks and not model.quantised:
            # Faster than sequential offload (a block per transfer, overlapped with the work), less than
            # model offload (which holds a whole 6-20B transformer on the device).
            working = _group_working(model, size, denoise)
            for lean, per_pixel in ((False, TILED_MAPS_PER_PIXEL), (True, LEAN_MAPS_PER_PIXEL)):
                maps = int(in_ram + per_pixel * pixels * element)
                for tile in tiles:
                    candidates.append(Candidate("group", int(working + vae_weights + tiled(tile)), tile,
                                                "cpu", lean, maps))  # fmt: skip
        if not model.quantised:
            for lean, per_pixel in ((False, TILED_MAPS_PER_PIXEL), (True, LEAN_MAPS_PER_PIXEL)):
                tile = tiles[-1]
                peak = max(unet * SEQUENTIAL_SHARE + denoise, vae_weights + tiled(tile))
                maps = int(in_ram + per_pixel * pixels * element)
                candidates.append(Candidate("sequential", int(peak), tile, "cpu", lean, maps))
    return candidates


def _group_working(model: ModelSize, size: int, denoise: float) -> float:
    """Device bytes of group offloading's weights and work: two blocks and what is outside the blocks, of
    the transformer while it denoises or of the text encoder before."""
    share = GROUP_BLOCKS_ON_DEVICE / model.blocks + GROUP_OUTSIDE_SHARE["transformer"]
    text_share = GROUP_BLOCKS_ON_DEVICE / model.text_blocks + GROUP_OUTSIDE_SHARE["text"]
    return max(model.unet * size * share + denoise, model.text_encoders * size * text_share)


def plan_prop_shape(model: ModelSize, precision: str, placement: str, budget_bytes: int | None) -> str:
    """Where a prop's shape stage runs on the device: "beside" the text-to-image model that drew its image,
    or "alone" once that model has left the device (the next job loads it again). The model's weights
    stay on the device only under the "device" placement (offload moves them off after every call); a
    quantised model cannot be moved, so it stays. Raises DoesNotFit when the stage does not fit alone."""
    if budget_bytes is None:
        return "beside"
    if budget_bytes < PROP_SHAPE_BYTES * MARGIN:
        raise DoesNotFit(
            f"the prop's shape model needs about {PROP_SHAPE_BYTES * MARGIN / GIB:.1f} GB of the GPU but "
            f"{budget_bytes / GIB:.1f} GB is available: close other apps using the GPU, or set device to cpu"
        )
    resident = weights_bytes(model, precision) if placement == "device" else 0.0
    fits = (resident + PROP_SHAPE_BYTES) * MARGIN <= budget_bytes
    return "beside" if fits or model.quantised else "alone"


def plan_generation(
    model: ModelSize,
    width: int,
    height: int,
    device: str,
    precision: str,
    budget_bytes: int | None,
    memory: str = "auto",
    can_offload: bool = True,
    ram_bytes: int | None = None,
) -> MemoryPlan:
    """The plan for one text-to-image job (see `choose`; `ram_bytes` is the computer's available RAM);
    raises DoesNotFit before anything loads."""
    candidates = generation_candidates(model, width, height, device, precision, can_offload)
    what = f"{width}x{height} with {model.family.upper()}"
    return choose(candidates, budget_bytes, memory, what, ram_bytes)


def plan_stage(
    model: ModelSize,
    width: int,
    height: int,
    device: str,
    precision: str,
    budget_bytes: int | None,
    memory: str,
    placement: str,
    what: str,
    denoised_pixels: int | None = None,
    ram_bytes: int | None = None,
) -> MemoryPlan:
    """The plan for a later stage that runs the job's loaded pipeline at another size (pole inpainting,
    the detail pass): the weights stay where the job's plan put them, so only the plans with that
    placement are candidates and what is chosen is how the stage encodes and decodes. `denoised_pixels`
    as for generation_candidates, `ram_bytes` as for plan_generation."""
    candidates = [
        candidate
        for candidate in generation_candidates(model, width, height, device, precision, True, denoised_pixels)
        if candidate.placement == placement
    ]
    return choose(candidates, budget_bytes, memory, what, ram_bytes)


def maps_in_ram(
    model: ModelSize, width: int, height: int, precision: str, ram_bytes: int | None, what: str
) -> Candidate:
    """The last resort of a stage beyond every plan: 512 px lean tiles, the feature maps in RAM (the
    device holds one tile's). Its RAM counts as any plan's: raises NotEnoughRam when it does not fit."""
    pixels = width * height
    element, _ = decode_bytes(model, precision)
    ram = LEAN_MAPS_PER_PIXEL * pixels * element + IMAGE_WORK_PER_PIXEL * pixels
    candidate = Candidate("tiled", 0, 512, "cpu", True, int(ram))
    choose([candidate], None, "auto", what, ram_bytes)
    return candidate


def estimate_gb(model: ModelSize, width: int, height: int, precision: str = "fp16") -> tuple[float, float]:
    """GB of a CUDA GPU a job needs (with the margin): everything resident, and with the lowest plan."""
    candidates = generation_candidates(model, width, height, "cuda", precision)
    lowest = min(candidates, key=lambda c: c.peak_bytes)
    return candidates[0].peak_bytes * MARGIN / GIB, lowest.peak_bytes * MARGIN / GIB


def estimate_text(model: ModelSize, width: int, height: int, precision: str = "fp16") -> str:
    """What the panel shows before Generate: the whole-pipeline peak and the lowest plan's, with the RAM
    the lowest plan needs (its weights and feature maps, lean)."""
    whole, lowest = estimate_gb(model, width, height, precision)
    candidates = generation_candidates(model, width, height, "cuda", precision)
    least = min(candidates, key=lambda c: (c.peak_bytes, c.ram_bytes))
    mark = "" if model.measured else "~"
    ram = f"{mark}{least.ram_bytes / GIB:.1f} GB RAM"
    text = f"Memory {mark}{whole:.1f} GB whole, {mark}{lowest:.1f} GB lowest (+{ram})"
    if model.blocks:  # a transformer family: what its quantised weights need whole on the device
        from .quantize import planned_size

        wholes = {mode: estimate_gb(planned_size(model, mode, precision_bytes(precision)), width, height)[0]
                  for mode in ("8bit", "4bit")}  # fmt: skip
        text += f"; 8-bit {mark}{wholes['8bit']:.1f}, 4-bit {mark}{wholes['4bit']:.1f} GB whole"
    return text
