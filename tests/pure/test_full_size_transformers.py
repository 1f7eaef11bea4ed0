"""The full-size random pipelines of the transformer families have the published models' parameter counts.

Built on the meta device: shapes without memory, so 28.8 B parameters cost nothing here.

Published figures, and where they come from:
- Z-Image (Turbo) transformer: 6.15 B (Z-Image technical report, Tongyi-MAI, 2025-11; the model cards).
- FLUX.2 klein 4B transformer: "4B" in its name only; black-forest-labs/FLUX.2-klein-4b-fp8's single file is
  4.07 GB at about one byte a weight. No exact figure: 3.80 to 4.10 B is asserted.
- Qwen-Image transformer: 20.4 B (Hugging Face's safetensors count on Qwen/Qwen-Image; "20B MMDiT").
- Qwen3-4B: 4.02 B (Hugging Face's safetensors count on Qwen/Qwen3-4B; its card: 4.0 B, embedding tied).
- Qwen2.5-VL-7B: 8.29 B with its vision tower (Hugging Face's count on Qwen/Qwen2.5-VL-7B-Instruct).
- VAEs, from the published files' sizes: FLUX.1's ae.safetensors 335 MB in fp32 (Z-Image ships it); the
  FLUX.2 VAE 168.5 MB in fp16; Qwen-Image's vae 254 MB in bf16.
Published figures are rounded: each is asserted to its printed precision, and the exact count built is
pinned beside it, so a change of config shows up even within the rounding.
"""

import pytest
from conftest import source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

# family: (transformer, text encoder, VAE): exact as built, and (published, half-width of its rounding)
EXPECTED = {
    "zimage": ((6_154_908_736, 6.15e9, 0.005e9), (4_022_468_096, 4.02e9, 0.005e9),
               (83_819_683, 335e6 / 4, 1e6)),
    "flux2-klein": ((3_875_544_576, 3.95e9, 0.15e9), (4_022_468_096, 4.02e9, 0.005e9),
                    (84_046_115, 168.5e6 / 2, 1e6)),
    "qwen-image": ((20_430_401_088, 20.4e9, 0.05e9), (8_292_166_656, 8.29e9, 0.005e9),
                   (126_892_531, 254e6 / 2, 1e6)),
}  # fmt: skip


def _count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def pipelines():
    builder = source_module("setup.full_size_transformers")
    return {family: builder.build_full_size_pipeline(family, "meta", torch.bfloat16) for family in EXPECTED}


@pytest.mark.parametrize("family", EXPECTED)
def test_each_part_has_the_published_parameter_count(pipelines, family):
    pipe = pipelines[family]
    parts = (pipe.transformer, pipe.text_encoder, pipe.vae)
    for part, (exact, published, rounding) in zip(parts, EXPECTED[family], strict=True):
        built = _count(part)
        assert abs(built - published) <= rounding, (type(part).__name__, built, published)
        assert built == exact, (type(part).__name__, built)


@pytest.mark.parametrize("family", EXPECTED)
def test_built_in_bf16_on_the_device_asked_for_leaving_the_default_dtype(pipelines, family):
    pipe = pipelines[family]
    for part in (pipe.transformer, pipe.text_encoder, pipe.vae):
        parameter = next(part.parameters())
        assert parameter.dtype == torch.bfloat16 and parameter.device.type == "meta"
    assert torch.get_default_dtype() == torch.float32


def test_the_text_encoders_keep_their_real_vocabulary_behind_the_word_level_tokenizer(pipelines):
    for family, size in (("zimage", 151936), ("flux2-klein", 151936), ("qwen-image", 152064)):
        pipe = pipelines[family]
        assert pipe.text_encoder.get_input_embeddings().num_embeddings == size
        assert len(pipe.tokenizer) < size and pipe.tokenizer.chat_template


@pytest.mark.parametrize(
    "family, transformer_outputs, encoder_outputs",
    [
        # Z-Image: attention and feed-forward outputs of 30 layers and 2 + 2 refiners; Qwen3: 36 x 2.
        ("zimage", 2 * 34, 2 * 36),
        # klein: 5 double blocks (image and text attention and MLP outputs), 20 single blocks (one fused).
        ("flux2-klein", 4 * 5 + 20, 2 * 36),
        # Qwen-Image: 60 double blocks x 4; Qwen2.5-VL: 28 language layers x 2 and 32 vision blocks x 2.
        ("qwen-image", 4 * 60, 2 * 28 + 2 * 32),
    ],
)
def test_every_residual_branch_output_is_scaled(family, transformer_outputs, encoder_outputs):
    builder = source_module("setup.full_size_transformers")
    scale = source_module("setup.full_size_models").scale_residual_outputs
    with torch.device("meta"):
        transformer, encoder = builder.build_transformer(family), builder.build_text_encoder(family)
    assert scale(transformer, outputs=builder.RESIDUAL_OUTPUTS) == transformer_outputs
    assert scale(encoder, outputs=builder.RESIDUAL_OUTPUTS) == encoder_outputs


def test_an_unknown_family_is_refused():
    builder = source_module("setup.full_size_transformers")
    with pytest.raises(ValueError, match="zimage"):
        builder.build_full_size_pipeline("flux1", "meta")
