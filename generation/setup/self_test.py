"""A one-minute check that generation works on this machine, without downloading a model.

It builds the tiny random-weight pipeline in memory, generates a 64x32 world in 2 steps on the chosen
device and proves the horizontal wrap: latents rolled by k columns must give the image rolled by 8k pixels.
"""

import logging
import platform
import time
from dataclasses import dataclass, field

from ..engine import devices
from ..engine.seamless import seamless
from ..errors import missing_dependency

log = logging.getLogger(__name__)

WIDTH, HEIGHT, STEPS = 64, 32, 2
_ROLL_COLUMNS = 2


@dataclass
class SelfTestReport:
    """What the self-test found: `ok` and a human-readable `summary()`."""

    ok: bool = False
    device: str = ""
    precision: str = ""
    torch_version: str = ""
    diffusers_version: str = ""
    seconds: float = 0.0
    wrap_error: float = float("nan")
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Several lines for the preferences panel, a console or a bug report."""
        lines = [
            f"Promptscape self-test: {'OK' if self.ok else 'FAILED'}",
            f"Device: {self.device or '-'}   precision: {self.precision or '-'}",
            f"torch {self.torch_version or '-'}, diffusers {self.diffusers_version or '-'}, "
            f"Python {platform.python_version()}",
            f"Generated {WIDTH}x{HEIGHT} in {STEPS} steps; seamless wrap error {self.wrap_error:.2e}",
            f"Took {self.seconds:.2f} s",
        ]
        lines += [f"Problem: {problem}" for problem in self.problems]
        return "\n".join(lines)


def run(device: str = "auto", precision: str = "auto") -> SelfTestReport:
    """Generate with the tiny model on `device` and check the image and the wrap; never downloads.

    Raises MissingDependency when torch or diffusers is not installed, InvalidRequest for a device this
    machine does not have; other failures are reported in the returned report.
    """
    start = time.perf_counter()  # wall time: importing torch and diffusers is part of what a user waits for
    try:
        import diffusers
        import torch
    except ImportError as error:
        raise missing_dependency(error.name or str(error), "the self-test") from error
    from .tiny_models import build_tiny_pipeline

    report = SelfTestReport(torch_version=torch.__version__, diffusers_version=diffusers.__version__)
    report.device = devices.resolve_device(device)
    report.precision = devices.resolve_precision(report.device, precision)
    try:
        pipe = build_tiny_pipeline("sd").to(report.device)
        if report.precision != "fp32":
            pipe.to(dtype=devices.torch_dtype(report.precision))
        pipe.set_progress_bar_config(disable=True)
        generator = torch.Generator(device=report.device).manual_seed(0)
        latents = torch.randn(
            (1, 4, HEIGHT // 8, WIDTH // 8), generator=generator, device=report.device, dtype=pipe.unet.dtype
        )
        images = []
        with seamless(pipe, wrap_x=True, wrap_y=False):
            for start_latents in (latents, torch.roll(latents, _ROLL_COLUMNS, dims=3)):
                result = pipe(
                    "self test",
                    num_inference_steps=STEPS,
                    width=WIDTH,
                    height=HEIGHT,
                    latents=start_latents,
                    output_type="np",
                )
                images.append(result.images[0])
        import numpy as np

        if not all(np.isfinite(image).all() for image in images):
            report.problems.append("the image has NaN/infinite pixels: try fp32 precision")
        else:
            shifted = np.roll(images[0], 8 * _ROLL_COLUMNS, axis=1)
            report.wrap_error = float(np.abs(shifted - images[1]).max())
            # fp16/bf16 round differently after a shift; the unwrapped case differs by about 0.4.
            tolerance = 1e-3 if report.precision == "fp32" else 5e-2
            if report.wrap_error > tolerance:
                report.problems.append(f"the world does not wrap around (error {report.wrap_error:.3g})")
    except Exception as error:
        log.exception("self-test failed")
        report.problems.append(f"{type(error).__name__}: {error}")
    report.ok = not report.problems
    report.seconds = time.perf_counter() - start
    return report
