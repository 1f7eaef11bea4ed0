"""Tiny random-weight parts of the transformer families (Z-Image, FLUX.2 klein, Qwen-Image), built offline.

diffusers' own tiny test configs are not in its wheel; these are written here at the smallest sizes that
keep each part's real structure (the VAE's scale factor 8, its latent channels, its kind of padding).
"""

import threading

FAMILIES = ("zimage", "flux2-klein", "qwen-image")
_SEED = 4321
_BUILD_LOCK = threading.Lock()  # seeding is process-wide


def build_tiny_vae(family: str):
    """The family's VAE, tiny: Z-Image's 16-channel AutoencoderKL, FLUX.2's AutoencoderKLFlux2 (32
    channels), or Qwen-Image's AutoencoderKLQwenImage (causal 3D convs, 16 channels)."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLQwenImage

    if family not in FAMILIES:
        raise ValueError(f"tiny VAE family must be one of {FAMILIES}, not {family!r}")
    blocks = {"block_out_channels": (8, 8, 16, 16), "layers_per_block": 1, "norm_num_groups": 2}
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        if family == "zimage":
            encoder, decoder = ("DownEncoderBlock2D",) * 4, ("UpDecoderBlock2D",) * 4
            vae = AutoencoderKL(
                latent_channels=16, down_block_types=encoder, up_block_types=decoder, **blocks
            )
        elif family == "flux2-klein":
            vae = AutoencoderKLFlux2(latent_channels=32, **blocks)
        else:
            vae = AutoencoderKLQwenImage(
                base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                temperal_downsample=[False, True, True], latents_mean=[0.0] * 16, latents_std=[1.0] * 16,
            )  # fmt: skip
    return vae.eval()
