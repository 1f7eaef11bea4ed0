"""Seamless worlds and materials on diffusion transformers: the latents are rolled between steps.

A transformer's rotary positions are not periodic, so padding cannot wrap it. Instead the latents are
rolled by a different offset of whole tokens after every step, so no column pair stays at the image's
edge for more than one step and the model draws across the wrap as across any other place; after the last
step they are rolled back. This is exact bookkeeping for the flow-matching Euler scheduler, which keeps no
history between steps: a step on rolled latents is the rolled step. Offsets follow the golden ratio, which
spreads them evenly over the width whatever the number of steps.
"""

from dataclasses import dataclass

GOLDEN = 0.6180339887
PATCH = 2  # latent pixels per token side, in every supported family
VAE_SCALE = 8  # image pixels per latent pixel


def roll_schedule(steps: int, columns: int, rows: int, wrap_y: bool) -> list[tuple[int, int]]:
    """(rows, columns) of tokens the latents are rolled by after each step, counted from the start; the last
    is (0, 0), so the result comes back unrolled."""
    schedule = []
    for step in range(1, steps):
        across = round(step * GOLDEN * columns) % columns
        down = round(step * GOLDEN * GOLDEN * rows) % rows if wrap_y else 0
        schedule.append((down, across))
    return [*schedule, (0, 0)]


@dataclass
class TokenRoll:
    """Rolls a family's latents after each step as `schedule` says (see roll_schedule)."""

    packed: bool  # (B, tokens, C) rather than (B, C, h, w)
    rows: int  # tokens down and across
    columns: int
    schedule: list[tuple[int, int]]
    at: tuple[int, int] = (0, 0)

    @classmethod
    def for_image(cls, packed: bool, width: int, height: int, steps: int, wrap_x: bool, wrap_y: bool):
        rows, columns = height // (VAE_SCALE * PATCH), width // (VAE_SCALE * PATCH)
        schedule = roll_schedule(steps, columns, rows, wrap_y) if wrap_x else [(0, 0)] * steps
        return cls(packed, rows, columns, schedule)

    def after_step(self, index: int, latents):
        """The latents to continue from after step `index` (0-based)."""
        target = self.schedule[min(index, len(self.schedule) - 1)]
        shift = (target[0] - self.at[0], target[1] - self.at[1])
        self.at = target
        return self.roll(latents, shift) if any(shift) else latents

    def roll(self, latents, shift: tuple[int, int]):
        import torch

        if not self.packed:
            return torch.roll(latents, (shift[0] * PATCH, shift[1] * PATCH), dims=(2, 3))
        batch, tokens, channels = latents.shape
        grid = latents.reshape(batch, self.rows, self.columns, channels)
        return torch.roll(grid, shift, dims=(1, 2)).reshape(batch, tokens, channels)

    def grid(self, latents):
        """The latents as (B, C, h, w) on the token grid, for a preview."""
        if not self.packed:
            return latents
        batch, _, channels = latents.shape
        return latents.reshape(batch, self.rows, self.columns, channels).permute(0, 3, 1, 2)
