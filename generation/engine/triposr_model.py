"""TripoSR's network in plain torch: image -> DINO ViT tokens -> triplane transformer -> triplane -> NeRF MLP.

Written here rather than built on transformers' ViT, whose parameter names changed in transformers 5: the
module names below are the published checkpoint's (stabilityai/TripoSR model.ckpt), so it loads strictly.
The image encoder keeps its pooler although nothing reads it, because the checkpoint has it.
torch is imported on first use (the module classes are made by `_network()`), so generation/ still imports
without torch.
"""

import functools
import math

from .triposr_config import TripoSRConfig

IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics the DINO encoder was trained with
IMAGE_STD = (0.229, 0.224, 0.225)


def build(config: TripoSRConfig, device: str = "cpu"):
    """A TripoSR module of `config` on `device` (random weights; "meta" builds shapes without memory)."""
    import torch

    with torch.device(device):
        return _network().TripoSR(config).eval()


def count_parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@functools.cache
def _network():
    """The module classes, made once torch is imported."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class ViTEmbeddings(nn.Module):
        """A class token and one embedding per 16x16 patch, plus position embeddings trained on a 14x14 grid
        and interpolated bicubically to the image's grid (as transformers 4.35, which TripoSR was trained
        with, did: a scale factor of (grid + 0.1) / 14)."""

        def __init__(self, config):
            super().__init__()
            width = config.encoder_width
            self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
            self.position_embeddings = nn.Parameter(torch.zeros(1, config.position_grid**2 + 1, width))
            self.patch_embeddings = nn.Module()
            self.patch_embeddings.projection = nn.Conv2d(3, width, config.patch, stride=config.patch)
            self.grid = config.position_grid

        def positions(self, rows: int, columns: int):
            table = self.position_embeddings
            if rows == columns == self.grid:
                return table
            grid = table[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            scale = ((rows + 0.1) / self.grid, (columns + 0.1) / self.grid)
            grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
            return torch.cat([table[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

        def forward(self, pixels):
            patches = self.patch_embeddings.projection(pixels)
            rows, columns = patches.shape[-2:]
            tokens = torch.cat(
                [self.cls_token.expand(len(pixels), -1, -1), patches.flatten(2).transpose(1, 2)], 1
            )
            return tokens + self.positions(rows, columns)

    class ViTSelfAttention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.heads = heads
            self.query = nn.Linear(width, width)
            self.key = nn.Linear(width, width)
            self.value = nn.Linear(width, width)

        def forward(self, tokens):
            q, k, v = (
                _split_heads(layer(tokens), self.heads) for layer in (self.query, self.key, self.value)
            )
            return _merge_heads(F.scaled_dot_product_attention(q, k, v))

    class ViTAttention(nn.Module):
        def __init__(self, width, heads):
            super().__init__()
            self.attention = ViTSelfAttention(width, heads)
            self.output = nn.Module()
            self.output.dense = nn.Linear(width, width)

        def forward(self, tokens):
            return self.output.dense(self.attention(tokens))

    class ViTLayer(nn.Module):
        """Pre-norm: attention, then a GELU MLP, each added to its input."""

        def __init__(self, config):
            super().__init__()
            width = config.encoder_width
            self.attention = ViTAttention(width, config.encoder_heads)
            self.intermediate = nn.Module()
            self.intermediate.dense = nn.Linear(width, config.encoder_mlp)
            self.output = nn.Module()
            self.output.dense = nn.Linear(config.encoder_mlp, width)
            self.layernorm_before = nn.LayerNorm(width, eps=1e-12)
            self.layernorm_after = nn.LayerNorm(width, eps=1e-12)

        def forward(self, tokens):
            tokens = tokens + self.attention(self.layernorm_before(tokens))
            hidden = F.gelu(self.intermediate.dense(self.layernorm_after(tokens)))
            return tokens + self.output.dense(hidden)

    class ViT(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.embeddings = ViTEmbeddings(config)
            self.encoder = nn.Module()
            self.encoder.layer = nn.ModuleList(ViTLayer(config) for _ in range(config.encoder_layers))
            self.layernorm = nn.LayerNorm(config.encoder_width, eps=1e-12)
            # Unused by TripoSR, kept because the published checkpoint holds it (tanh(dense(class token))).
            self.pooler = nn.Module()
            self.pooler.dense = nn.Linear(config.encoder_width, config.encoder_width)

        def forward(self, pixels):
            tokens = self.embeddings(pixels)
            for layer in self.encoder.layer:
                tokens = layer(tokens)
            return self.layernorm(tokens)

    class ImageTokenizer(nn.Module):
        """Normalises an RGB image in [0, 1] and encodes it: (B, 3, H, W) -> (B, 1 + patches, width)."""

        def __init__(self, config):
            super().__init__()
            self.model = ViT(config)
            self.register_buffer("image_mean", torch.tensor(IMAGE_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("image_std", torch.tensor(IMAGE_STD).view(1, 3, 1, 1), persistent=False)

        def set_statistics(self):
            """The normalisation buffers on the weights' device (after a meta build they hold no values)."""
            device = self.model.embeddings.cls_token.device
            self.image_mean = torch.tensor(IMAGE_MEAN, device=device).view(1, 3, 1, 1)
            self.image_std = torch.tensor(IMAGE_STD, device=device).view(1, 3, 1, 1)

        def forward(self, image):
            return self.model((image - self.image_mean) / self.image_std)

    class TriplaneTokens(nn.Module):
        """Learned tokens, one per cell of three planes: (3, channels, P, P) <-> (B, channels, 3 P P)."""

        def __init__(self, config):
            super().__init__()
            shape = (3, config.token_channels, config.plane_size, config.plane_size)
            self.embeddings = nn.Parameter(torch.randn(shape) / math.sqrt(config.token_channels))

        def forward(self, batch: int):
            return self.embeddings.flatten(2).transpose(0, 1).flatten(1).expand(batch, -1, -1)

        def planes(self, tokens):
            channels, size = self.embeddings.shape[1], self.embeddings.shape[-1]
            return tokens.view(len(tokens), channels, 3, size, size).transpose(1, 2)

    class Attention(nn.Module):
        """Multi-head attention without q/k/v biases; self-attention unless a context is given."""

        def __init__(self, width, heads, head_dim, context_width=None):
            super().__init__()
            inner = heads * head_dim
            self.heads = heads
            self.to_q = nn.Linear(width, inner, bias=False)
            self.to_k = nn.Linear(context_width or width, inner, bias=False)
            self.to_v = nn.Linear(context_width or width, inner, bias=False)
            self.to_out = nn.ModuleList([nn.Linear(inner, width), nn.Identity()])

        def forward(self, tokens, context=None):
            context = tokens if context is None else context
            q = _split_heads(self.to_q(tokens), self.heads)
            k, v = (_split_heads(layer(context), self.heads) for layer in (self.to_k, self.to_v))
            return self.to_out[0](_merge_heads(F.scaled_dot_product_attention(q, k, v)))

    class GEGLU(nn.Module):
        def __init__(self, width, inner):
            super().__init__()
            self.proj = nn.Linear(width, inner * 2)

        def forward(self, tokens):
            value, gate = self.proj(tokens).chunk(2, dim=-1)
            return value * F.gelu(gate)

    class FeedForward(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.net = nn.ModuleList([GEGLU(width, width * 4), nn.Identity(), nn.Linear(width * 4, width)])

        def forward(self, tokens):
            return self.net[2](self.net[0](tokens))

    class TransformerBlock(nn.Module):
        """Self-attention over the triplane tokens, cross-attention to the image tokens, a GEGLU MLP."""

        def __init__(self, config):
            super().__init__()
            width = config.inner_width
            self.norm1 = nn.LayerNorm(width)
            self.attn1 = Attention(width, config.heads, config.head_dim)
            self.norm2 = nn.LayerNorm(width)
            self.attn2 = Attention(width, config.heads, config.head_dim, config.encoder_width)
            self.norm3 = nn.LayerNorm(width)
            self.ff = FeedForward(width)

        def forward(self, tokens, image_tokens):
            tokens = tokens + self.attn1(self.norm1(tokens))
            tokens = tokens + self.attn2(self.norm2(tokens), image_tokens)
            return tokens + self.ff(self.norm3(tokens))

    class Transformer1D(nn.Module):
        """(B, channels, tokens) -> the same shape: group norm, project in, blocks, project out, residual."""

        def __init__(self, config):
            super().__init__()
            self.norm = nn.GroupNorm(config.norm_groups, config.token_channels, eps=1e-6)
            self.proj_in = nn.Linear(config.token_channels, config.inner_width)
            self.transformer_blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.layers))
            self.proj_out = nn.Linear(config.inner_width, config.token_channels)

        def forward(self, tokens, image_tokens, cancelled=None):
            hidden = self.proj_in(self.norm(tokens).transpose(1, 2))
            for block in self.transformer_blocks:
                if cancelled is not None:
                    cancelled()
                hidden = block(hidden, image_tokens)
            return self.proj_out(hidden).transpose(1, 2) + tokens

    class TriplaneUpsampler(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.upsample = nn.ConvTranspose2d(config.token_channels, config.triplane_channels, 2, stride=2)

        def forward(self, planes):  # (B, 3, C, P, P) -> (B, 3, C', 2P, 2P)
            batch = len(planes)
            return self.upsample(planes.flatten(0, 1)).unflatten(0, (batch, 3))

    class NeRFMLP(nn.Module):
        """A point's features (three planes' samples, concatenated) -> raw density and three colours."""

        def __init__(self, config):
            super().__init__()
            width = config.decoder_width
            layers = [nn.Linear(3 * config.triplane_channels, width), nn.SiLU()]
            for _ in range(config.decoder_hidden_layers - 1):
                layers += [nn.Linear(width, width), nn.SiLU()]
            self.layers = nn.Sequential(*layers, nn.Linear(width, 4))

        def forward(self, features):
            return self.layers(features)

    class TripoSR(nn.Module):
        """The whole network: `forward` gives the triplane of an image; `query` reads it at points."""

        def __init__(self, config):
            super().__init__()
            self.config = config
            self.image_tokenizer = ImageTokenizer(config)
            self.tokenizer = TriplaneTokens(config)
            self.backbone = Transformer1D(config)
            self.post_processor = TriplaneUpsampler(config)
            self.decoder = NeRFMLP(config)

        def forward(self, image, cancelled=None):
            """(B, 3, S, S) RGB in [0, 1], S = config.image_size -> triplanes (B, 3, C, 2P, 2P)."""
            image_tokens = self.image_tokenizer(image)
            tokens = self.backbone(self.tokenizer(len(image)), image_tokens, cancelled)
            return self.post_processor(self.tokenizer.planes(tokens))

        def query(self, triplane, points):
            """Density and colour of one triplane (3, C, H, W) at points (N, 3) inside the cube of side
            2 * radius: plane 0 is sampled at (x, y), plane 1 at (x, z), plane 2 at (y, z)."""
            scaled = points / self.config.radius
            pairs = torch.stack([scaled[:, [0, 1]], scaled[:, [0, 2]], scaled[:, [1, 2]]])[:, None]
            samples = F.grid_sample(triplane, pairs, mode="bilinear", align_corners=False)  # (3, C, 1, N)
            features = samples[:, :, 0].permute(2, 0, 1).flatten(1)
            raw = self.decoder(features)
            density = torch.exp(raw[:, 0] + self.config.density_bias)
            return density, torch.sigmoid(raw[:, 1:4])

    def _split_heads(tokens, heads):
        return tokens.unflatten(-1, (heads, -1)).transpose(1, 2)

    def _merge_heads(tokens):
        return tokens.transpose(1, 2).flatten(2)

    return type("Network", (), {"TripoSR": TripoSR})
