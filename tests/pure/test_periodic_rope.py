"""wrap_mode="periodic": each family's transformer, called as its pipeline calls it, is roll-equivariant
for shifts of whole tokens (x for worlds, x and y for materials) under periodic_rope(), where the stock
transformer is not; the patch is undone exactly; the worker runs it without rolling and records it."""

import numpy as np
import pytest
from conftest import ROOT, source_module

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

FAMILIES = source_module("setup.tiny_transformers").FAMILIES
CACHE = ROOT / ".cache" / "tiny-models"
EXACT = 1e-4  # of the output's spread: float arithmetic in another order
# (rows, columns) of tokens, and the roll in tokens
GRIDS = {"world": ((4, 8), (0, 3)), "material": ((4, 4), (1, 3))}


@pytest.fixture(scope="module", params=FAMILIES)
def family(request):
    return source_module("engine.families").named(request.param)


@pytest.fixture(scope="module")
def transformer(family):
    return source_module("setup.tiny_transformers").build_tiny_pipeline(family.name).transformer.eval()


def _latents(family, rows, columns):
    """Noise as the pipeline hands it to the transformer: Z-Image's (C, frames, h, w) latent pixels,
    the others' packed 2x2-patch tokens (B, tokens, C)."""
    generator = torch.Generator().manual_seed(2)
    if family.name == "zimage":
        return torch.randn((16, 1, 2 * rows, 2 * columns), generator=generator)
    channels = {"flux2-klein": 128, "qwen-image": 64}[family.name]
    return torch.randn((1, rows * columns, channels), generator=generator)


def _denoise(family, transformer, latents, rows, columns):
    """One denoiser call with the arguments each pipeline's __call__ passes (a fixed random prompt)."""
    generator = torch.Generator().manual_seed(1)
    timestep = torch.tensor([0.4])
    if family.name == "zimage":
        caption = torch.randn((7, transformer.config.cap_feat_dim), generator=generator)
        return transformer([latents], timestep, [caption], return_dict=False)[0][0]
    width = transformer.config.joint_attention_dim
    text = torch.randn((1, 5, width), generator=generator)
    if family.name == "flux2-klein":
        one = torch.arange(1)
        grid = torch.cartesian_prod(one, torch.arange(rows), torch.arange(columns), one)  # (t, h, w, l)
        text_ids = torch.cartesian_prod(one, one, one, torch.arange(5))
        return transformer(
            hidden_states=latents, timestep=timestep, guidance=None, encoder_hidden_states=text,
            txt_ids=text_ids[None], img_ids=grid[None], joint_attention_kwargs=None, return_dict=False,
        )[0]  # fmt: skip
    mask = torch.ones((1, 5), dtype=torch.long)
    return transformer(
        hidden_states=latents, timestep=timestep, guidance=None, encoder_hidden_states_mask=mask,
        encoder_hidden_states=text, img_shapes=[[(1, rows, columns)]], attention_kwargs=None,
        return_dict=False,
    )[0]  # fmt: skip


def _roll(family, x, rows, columns, shift):
    if family.name == "zimage":  # a token is 2x2 latent pixels
        return torch.roll(x, (2 * shift[0], 2 * shift[1]), dims=(-2, -1))
    batch, tokens, channels = x.shape
    grid = x.reshape(batch, rows, columns, channels)
    return torch.roll(grid, shift, dims=(1, 2)).reshape(batch, tokens, channels)


def roll_error(family, transformer, kind, periodic, text_follows=True):
    """max |denoise(roll(x)) - roll(denoise(x))| / std(denoise(x)) for the kind's grid and roll."""
    periodic_rope = source_module("engine.periodic_rope")
    (rows, columns), shift = GRIDS[kind]
    wrap_y = kind == "material"

    def positions(moved):
        if not periodic:
            return periodic_rope.periodic_rope(transformer, family.rope, rows, columns, False, False)
        text_shift = moved if text_follows else (0, 0)
        return periodic_rope.periodic_rope(transformer, family.rope, rows, columns, True, wrap_y, text_shift)

    latents = _latents(family, rows, columns)
    with torch.no_grad(), positions((0, 0)):
        first = _denoise(family, transformer, latents, rows, columns)
    with torch.no_grad(), positions(shift):
        rolled = _denoise(family, transformer, _roll(family, latents, rows, columns, shift), rows, columns)
    return float((_roll(family, first, rows, columns, shift) - rolled).abs().max() / first.std())


@pytest.mark.parametrize("kind", ["world", "material"])
def test_periodic_positions_make_the_transformer_roll_equivariant(family, transformer, kind, record_property):
    periodic = roll_error(family, transformer, kind, periodic=True)
    stock = roll_error(family, transformer, kind, periodic=False)
    print(f"{family.name} {kind}: periodic {periodic:.2g}, stock {stock:.2g}")
    record_property("roll_error", {"periodic": periodic, "stock": stock})
    assert periodic < EXACT
    assert stock > 1e-3  # the stock positions do not wrap: the patch is what makes the difference
    # The text's positions must roll along with the image, or the text anchors the image in place.
    assert roll_error(family, transformer, kind, periodic=True, text_follows=False) > 1e-3


def _periodic(family, transformer, kind, shift=(0, 0)):
    """periodic_rope() for the kind's grid: x for a world, x and y for a material."""
    (rows, columns), _ = GRIDS[kind]
    periodic_rope = source_module("engine.periodic_rope")
    wrap_y = kind == "material"
    return periodic_rope.periodic_rope(transformer, family.rope, rows, columns, True, wrap_y, shift)


def _snapshot(transformer):
    """Every module's (and Z-Image's rope embedder's) attributes as objects, and the weights' values."""
    owners = [*transformer.modules(), getattr(transformer, "rope_embedder", None)]
    attributes = [(owner, dict(vars(owner))) for owner in owners if owner is not None]
    return attributes, {name: tensor.clone() for name, tensor in transformer.state_dict().items()}


def _assert_restored(transformer, before):
    attributes, weights = before
    now_attributes, now_weights = _snapshot(transformer)
    assert [owner for owner, _ in now_attributes] == [owner for owner, _ in attributes]
    for (owner, then), (_, now) in zip(attributes, now_attributes, strict=True):
        assert now.keys() == then.keys(), type(owner).__name__
        assert all(now[key] is then[key] for key in then), type(owner).__name__
    assert now_weights.keys() == weights.keys()
    assert all(torch.equal(now_weights[name], weights[name]) for name in weights)


def test_the_patch_is_undone_exactly_also_after_an_error(family, transformer):
    (rows, columns), shift = GRIDS["material"]
    latents = _latents(family, rows, columns)
    with torch.no_grad():
        stock = _denoise(family, transformer, latents, rows, columns)
        before = _snapshot(transformer)
        with _periodic(family, transformer, "material", shift) as count:
            assert count > 0
            patched = _denoise(family, transformer, latents, rows, columns)
            twice = _periodic(family, transformer, "world")
            with pytest.raises(RuntimeError, match="already periodic"), twice:
                pass
        _assert_restored(transformer, before)
        with pytest.raises(ValueError, match="inside"), _periodic(family, transformer, "world"):
            raise ValueError("inside")
        _assert_restored(transformer, before)
        again = _denoise(family, transformer, latents, rows, columns)
    assert (patched - stock).abs().max() > 1e-3  # the patch changed the positions
    torch.testing.assert_close(again, stock, rtol=0, atol=0)  # and the stock transformer is back


def test_a_forward_hook_set_on_the_instance_runs_inside_and_is_kept(family, transformer):
    """Model offloading (accelerate) sets the transformer's forward on the instance: the patch must call
    it and put it back, not drop it."""
    (rows, columns), _ = GRIDS["world"]
    calls = []
    stock = transformer.forward

    def hooked(*args, **kwargs):
        calls.append(1)
        return stock(*args, **kwargs)

    transformer.forward = hooked
    try:
        with torch.no_grad(), _periodic(family, transformer, "world"):
            _denoise(family, transformer, _latents(family, rows, columns), rows, columns)
        assert calls == [1] and transformer.__dict__["forward"] is hooked
    finally:
        del transformer.forward


def test_periodic_is_refused_in_words_where_positions_cannot_wrap():
    families, errors = source_module("engine.families"), source_module("errors")
    periodic_rope = source_module("engine.periodic_rope")
    unknown = families.Family("new", ("NewPipeline",), transformer=True)
    with pytest.raises(errors.InvalidRequest, match="set wrap_mode to roll"):
        families.check_request(unknown, "default", 128, 64, "periodic")
    families.check_request(unknown, "default", 128, 64, "roll")
    families.check_request(families.named("sdxl"), "default", 128, 64, "periodic")  # UNets ignore it
    cannot = periodic_rope.periodic_rope(object(), "", 4, 8, True, False)
    with pytest.raises(errors.InvalidRequest, match="use wrap_mode roll"), cannot:
        pass
    request = source_module("engine.request").GenerationRequest
    with pytest.raises(errors.InvalidRequest, match="wrap_mode is 'tile': use one of roll, periodic"):
        request(prompt="a sky", model="org/model", width=128, height=64, wrap_mode="tile").validate()


@pytest.fixture(scope="module")
def worker():
    worker = source_module("engine.worker").Worker()
    yield worker
    worker.shutdown()


@pytest.mark.parametrize("name", FAMILIES)
def test_a_periodic_world_runs_unrolled_and_is_recorded(worker, name):
    from diffusers import DiffusionPipeline

    folder = source_module("setup.tiny_transformers").ensure_tiny_pipeline(name, CACHE)
    request = source_module("engine.request").GenerationRequest(
        prompt="a red sky", seed=3, steps=3, width=128, height=64, model=str(folder), device="cpu",
        poles="off", guidance=1.0, wrap_mode="periodic",
    )  # fmt: skip
    job = worker.submit(request, on_image=lambda image, resolved, job: image)
    assert job.wait(300) and job.state == "done", job.message
    assert job.metadata["wrap_mode"] == "periodic" and np.isfinite(job.outputs).all()
    # The plain pipeline under the same two wraps, and no rolled latents: the same image, bit for bit.
    seamless, periodic_rope = source_module("engine.seamless"), source_module("engine.periodic_rope")
    family = source_module("engine.families").named(name)
    pipe = DiffusionPipeline.from_pretrained(folder)
    with (
        seamless.seamless(pipe, True, False),
        periodic_rope.periodic_rope(pipe.transformer, family.rope, 4, 8, True, False),
    ):
        plain = pipe(prompt="a red sky", num_inference_steps=3, width=128, height=64, output_type="np",
                     generator=torch.Generator().manual_seed(3),
                     **{family.guidance_argument: 1.0}).images[0]  # fmt: skip
    np.testing.assert_array_equal(job.outputs, plain)
