"""Model downloads, offline: which files of a repo are fetched, and the progress snapshot_download reports."""

import importlib
import logging

import pytest
from huggingface_hub.utils import tqdm as hub_tqdm
from huggingface_hub.utils._xet_progress_reporting import (
    _finish_transfer_bar,
    _set_aggregate_rate_postfix,
    _update_transfer_bar,
)
from huggingface_hub.utils.tqdm import _create_progress_bar, hf_thread_map

# The file lists of stable-diffusion-v1-5/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0.
SD15_FILES = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "v1-inference.yaml",
    "v1-5-pruned-emaonly.ckpt",
    "v1-5-pruned-emaonly.safetensors",
    "v1-5-pruned.ckpt",
    "v1-5-pruned.safetensors",
    "feature_extractor/preprocessor_config.json",
    "safety_checker/config.json",
    "safety_checker/model.fp16.safetensors",
    "safety_checker/model.safetensors",
    "safety_checker/pytorch_model.bin",
    "safety_checker/pytorch_model.fp16.bin",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.safetensors",
    "text_encoder/pytorch_model.bin",
    "text_encoder/pytorch_model.fp16.bin",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.bin",
    "unet/diffusion_pytorch_model.fp16.bin",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.non_ema.bin",
    "unet/diffusion_pytorch_model.non_ema.safetensors",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.bin",
    "vae/diffusion_pytorch_model.fp16.bin",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
]
SD15_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.6.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SDXL_FILES = [
    ".gitattributes",
    "01.png",
    "LICENSE.md",
    "README.md",
    "comparison.png",
    "model_index.json",
    "pipeline.png",
    "sd_xl_base_1.0.safetensors",
    "sd_xl_base_1.0_0.9vae.safetensors",
    "sd_xl_offset_example-lora_1.0.safetensors",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/flax_model.msgpack",
    "text_encoder/model.fp16.safetensors",
    "text_encoder/model.onnx",
    "text_encoder/model.safetensors",
    "text_encoder/openvino_model.bin",
    "text_encoder/openvino_model.xml",
    "text_encoder_2/config.json",
    "text_encoder_2/flax_model.msgpack",
    "text_encoder_2/model.fp16.safetensors",
    "text_encoder_2/model.onnx",
    "text_encoder_2/model.onnx_data",
    "text_encoder_2/model.safetensors",
    "text_encoder_2/openvino_model.bin",
    "text_encoder_2/openvino_model.xml",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "tokenizer_2/merges.txt",
    "tokenizer_2/special_tokens_map.json",
    "tokenizer_2/tokenizer_config.json",
    "tokenizer_2/vocab.json",
    "unet/config.json",
    "unet/diffusion_flax_model.msgpack",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.onnx",
    "unet/diffusion_pytorch_model.onnx_data",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/openvino_model.bin",
    "unet/openvino_model.xml",
    "vae/config.json",
    "vae/diffusion_flax_model.msgpack",
    "vae/diffusion_pytorch_model.fp16.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "vae_1_0/config.json",
    "vae_1_0/diffusion_pytorch_model.fp16.safetensors",
    "vae_1_0/diffusion_pytorch_model.safetensors",
    "vae_decoder/config.json",
    "vae_decoder/model.onnx",
    "vae_decoder/openvino_model.bin",
    "vae_decoder/openvino_model.xml",
    "vae_encoder/config.json",
    "vae_encoder/model.onnx",
    "vae_encoder/openvino_model.bin",
    "vae_encoder/openvino_model.xml",
]
SDXL_INDEX = {
    "_class_name": "StableDiffusionXLPipeline",
    "_diffusers_version": "0.19.0.dev0",
    "force_zeros_for_empty_prompt": True,
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "tokenizer_2": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
BYTES_BAR = "huggingface_hub.snapshot_download"


@pytest.fixture(scope="module")
def catalog(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.model_catalog")


def test_sd15_gets_each_weight_once(catalog):
    assert catalog.choose_files(SD15_INDEX, SD15_FILES) == [
        "feature_extractor/preprocessor_config.json",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_sdxl_skips_exports_variants_and_the_spare_vae(catalog):
    assert catalog.choose_files(SDXL_INDEX, SDXL_FILES) == [
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder_2/config.json",
        "text_encoder_2/model.safetensors",
        "tokenizer/merges.txt",
        "tokenizer/special_tokens_map.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/vocab.json",
        "tokenizer_2/merges.txt",
        "tokenizer_2/special_tokens_map.json",
        "tokenizer_2/tokenizer_config.json",
        "tokenizer_2/vocab.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_shards_count_as_plain_weights(catalog):
    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "image_encoder": [None, None],  # declared but absent: its folder is not a component
        "feature_extractor": [None, None],
    }
    files = [
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        "unet/diffusion_pytorch_model.ema.safetensors",
        "unet/diffusion_pytorch_model.bin.index.json",
        "text_encoder_2/model.safetensors",
        "text_encoder_2/spiece.model",
        "text_encoder_2/extra/model.safetensors",
        "image_encoder/model.safetensors",
        "feature_extractor/preprocessor_config.json",
    ]
    assert catalog.choose_files(index, files) == [
        "model_index.json",
        "text_encoder_2/model.safetensors",
        "text_encoder_2/spiece.model",
        "unet/config.json",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    ]


def test_a_transformer_repo_brings_its_chat_template(catalog):
    """transformers 5 keeps a tokenizer's chat template in chat_template.jinja: the text encoders of the
    transformer families cannot encode a prompt without it."""
    index = {"_class_name": "ZImagePipeline", "tokenizer": ["transformers", "Qwen2Tokenizer"],
             "transformer": ["diffusers", "ZImageTransformer2DModel"]}  # fmt: skip
    weights = "transformer/diffusion_pytorch_model.safetensors"
    files = ["model_index.json", "tokenizer/chat_template.jinja", "tokenizer/tokenizer.json",
             "transformer/config.json", weights, "assets/demo.jpg"]  # fmt: skip
    assert catalog.choose_files(index, files) == sorted(files[:5])


def _bars(cls):
    """The bars snapshot_download makes, the way it makes them."""
    level = logging.INFO  # a level at which hub would draw its own bars on a terminal
    transfer = _create_progress_bar(
        cls=cls,
        log_level=level,
        name=BYTES_BAR + ".transfer",
        desc="Downloading bytes",
        total=0,
        initial=0,
        unit="B",
        unit_scale=True,
    )
    written = _create_progress_bar(
        cls=cls, log_level=level, name=BYTES_BAR, desc="Reconstructing", total=0, initial=0, unit="B"
    )
    return transfer, written


def _start_file(transfer, written, size, cached=0):
    """What snapshot_download's per-file bar does as a file starts: grow both totals, count what is cached."""
    written.total = (written.total or 0) + size
    transfer.total = (transfer.total or 0) + size
    written.refresh()
    if cached:
        written.update(cached)


def test_progress_follows_the_bytes_written(catalog, capsys):
    download = catalog.Download("org/model", allow_network=True)
    cls = download.progress_class()
    assert issubclass(cls, hub_tqdm)
    assert (download.done_bytes, download.total_bytes, download.fraction) == (0, 0, 0.0)
    transfer, written = _bars(cls)
    with cls(desc="Fetching 2 files", total=2) as files:  # hf_thread_map's bar, counting files
        _start_file(transfer, written, 1000)
        written.update(400)
        _update_transfer_bar(transfer, 300)
        assert (download.done_bytes, download.total_bytes) == (400, 1000)
        assert download.fraction == pytest.approx(0.4)
        _start_file(transfer, written, 3000, cached=500)
        assert (download.done_bytes, download.total_bytes) == (900, 4000)
        _update_transfer_bar(transfer, 9000)  # more network bytes than the files hold: its total grows
        assert transfer.n == 9300 and transfer.total > 9300
        written.update(600)
        written.set_postfix_str("rate", refresh=False)
        _set_aggregate_rate_postfix(written)
        files.update(1)
        written.update(2500)
        files.update(1)
    _finish_transfer_bar(transfer)
    transfer.set_description_str("Download complete")
    written.set_description("Reconstruction complete")
    written.close()
    assert (download.done_bytes, download.total_bytes, download.fraction) == (4000, 4000, 1.0)
    assert files.n == 2 and transfer.total == transfer.n == 9300
    assert capsys.readouterr().err == ""  # Blender's console gets no bars


def test_cancel_aborts_at_the_next_update(catalog, errors):
    download = catalog.Download("org/model", allow_network=True)
    cls = download.progress_class()
    transfer, written = _bars(cls)
    _start_file(transfer, written, 100)
    written.update(10)
    download.cancel()
    with pytest.raises(errors.Cancelled, match="kept for a resume"):
        written.update(10)
    with pytest.raises(errors.Cancelled):
        _update_transfer_bar(transfer, 10)
    assert download.done_bytes == 10


def test_cancel_stops_the_parallel_file_downloads(catalog, errors):
    download = catalog.Download("org/model", allow_network=True)
    cls = download.progress_class()
    transfer, written = _bars(cls)
    finished = []

    def fetch(name):
        _start_file(transfer, written, 10)
        if name == "b":
            download.cancel()
        written.update(10)
        finished.append(name)

    with pytest.raises(errors.Cancelled):
        hf_thread_map(fetch, ["a", "b", "c"], max_workers=1, desc="Fetching 3 files", tqdm_class=cls)
    assert finished == ["a"]


def test_a_partial_download_is_not_a_model(catalog, addon, tiny_sd, tmp_path):
    import importlib
    import shutil

    models = importlib.import_module(addon.__name__ + ".generation.engine.models")
    folder = tmp_path / "snapshot"
    shutil.copytree(tiny_sd, folder)
    assert models.snapshot_complete(folder / "model_index.json")
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.unlink()  # cancelled before the UNet's weights arrived: only its config is there
    assert not models.snapshot_complete(folder / "model_index.json")
    shutil.rmtree(folder / "vae")
    assert not models.snapshot_complete(folder / "model_index.json")
