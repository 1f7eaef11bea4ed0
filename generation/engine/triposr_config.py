"""TripoSR's configuration, hard-coded: the published stabilityai/TripoSR and a tiny one for tests.

Upstream reads config.yaml and fetches the image encoder's config (facebook/dino-vitb16) from the Hub at
start-up; here both are fixed, so nothing is fetched or interpreted at load time. The checkpoint loader picks
the configuration whose parameter names and shapes the state dict matches exactly. Torch-free.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class TripoSRConfig:
    """The numbers that fix TripoSR's architecture and how its triplane is read."""

    name: str
    image_size: int  # the conditioning image's side (cond_image_size)
    # The image encoder: a DINO ViT (patch embedding, pre-norm blocks, final norm, pooler).
    encoder_width: int
    encoder_layers: int
    encoder_heads: int
    encoder_mlp: int
    patch: int
    position_grid: int  # side of the patch grid the position embeddings were trained on (224 / 16)
    # The image-to-triplane transformer over learned triplane tokens.
    plane_size: int  # tokens per plane side, before the upsampler doubles it
    token_channels: int
    heads: int
    head_dim: int
    layers: int
    norm_groups: int
    # The upsampler and the NeRF MLP that reads the triplane.
    triplane_channels: int
    decoder_width: int
    decoder_hidden_layers: int
    # How the triplane is read: a cube of this half-side, density = exp(raw + bias), colour = sigmoid.
    radius: float = 0.87
    density_bias: float = -1.0
    density_threshold: float = 25.0  # the iso-level upstream extracts its mesh at
    mesh_resolution: int = 256  # grid points per side upstream extracts at

    @property
    def inner_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch) ** 2


FULL = TripoSRConfig(
    name="stabilityai/TripoSR",
    image_size=512,
    encoder_width=768,
    encoder_layers=12,
    encoder_heads=12,
    encoder_mlp=3072,
    patch=16,
    position_grid=14,
    plane_size=32,
    token_channels=1024,
    heads=16,
    head_dim=64,
    layers=16,
    norm_groups=32,
    triplane_channels=40,
    decoder_width=64,
    decoder_hidden_layers=9,
)

TINY = TripoSRConfig(
    name="tiny TripoSR (tests)",
    image_size=32,
    encoder_width=16,
    encoder_layers=1,
    encoder_heads=2,
    encoder_mlp=32,
    patch=8,
    position_grid=2,  # a 2x2 trained grid interpolated to 4x4: the interpolation runs in tests too
    plane_size=4,
    token_channels=16,
    heads=2,
    head_dim=8,
    layers=1,
    norm_groups=4,
    triplane_channels=4,
    decoder_width=16,
    decoder_hidden_layers=2,
    mesh_resolution=32,
)

CONFIGS = (FULL, TINY)
FULL_PARAMETERS = 419_275_628  # the published model.ckpt's count, pooler included
