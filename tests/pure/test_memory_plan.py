"""The memory planner: a pure function of model size, image size, device, precision and budget."""

import os

import pytest

GB = 2**30


@pytest.fixture(scope="module")
def sdxl(memory_plan):
    return memory_plan.FAMILIES["sdxl"]


def plan(memory_plan, model, budget_gb, width=2048, height=1024, device="cuda", precision="fp16", **kw):
    """A job's plan; the RAM is unbudgeted unless `ram_bytes` is given."""
    budget = None if budget_gb is None else int(budget_gb * GB)
    return memory_plan.plan_generation(model, width, height, device, precision, budget, **kw)


def test_a_large_gpu_runs_everything_resident_with_a_plain_decode(memory_plan, sdxl):
    chosen = plan(memory_plan, sdxl, 139)
    assert chosen.name == "full" and chosen.tile is None and chosen.placement == "device"
    # Measured at real size (H200): 18.28 GiB peak for the fp32-upcast decode at 2048x1024.
    assert 17 * GB < chosen.peak_bytes < 20 * GB


def test_plans_step_down_as_the_budget_shrinks(memory_plan, sdxl):
    chosen = [plan(memory_plan, sdxl, gb) for gb in (139, 16, 12, 8, 6)]
    names = [step.name for step in chosen]
    assert names == ["full", "tiled", "tiled", "offload", "sequential"]
    assert [step.lean for step in chosen] == [False, False, True, False, False]
    order = memory_plan.PLANS
    assert [order.index(name) for name in names] == sorted(order.index(name) for name in names)


def test_every_chosen_plan_fits_its_budget_with_margin(memory_plan, sdxl):
    for gb in (139, 24, 16, 12, 10, 8, 6, 4):
        chosen = plan(memory_plan, sdxl, gb)
        assert chosen.peak_bytes * memory_plan.MARGIN <= gb * GB, (gb, chosen)


def test_offload_keeps_feature_maps_in_ram(memory_plan, sdxl):
    chosen = plan(memory_plan, sdxl, 8)
    assert chosen.placement == "offload" and chosen.storage == "cpu" and chosen.tile


def test_without_accelerate_there_is_no_offload(memory_plan, sdxl):
    with pytest.raises(memory_plan.DoesNotFit):
        plan(memory_plan, sdxl, 8, can_offload=False)


def test_too_little_memory_is_said_in_words(memory_plan, sdxl):
    with pytest.raises(memory_plan.DoesNotFit, match=r"needs about [\d.]+ GB .* but 0\.5 GB is available"):
        plan(memory_plan, sdxl, 0.5)


def test_lean_tiles_need_less_than_stored_tiles(memory_plan, sdxl):
    candidates = memory_plan.generation_candidates(sdxl, 4096, 2048, "cpu", "fp32")
    stored = next(c for c in candidates if c.name == "tiled" and c.tile == 512 and not c.lean)
    lean = next(c for c in candidates if c.name == "tiled" and c.tile == 512 and c.lean)
    assert lean.peak_bytes < stored.peak_bytes < candidates[0].peak_bytes


def test_cpu_and_mps_have_no_offload_plans(memory_plan, sdxl):
    for device in ("cpu", "mps"):
        names = {c.name for c in memory_plan.generation_candidates(sdxl, 2048, 1024, device, "fp32")}
        assert names == {"full", "tiled"}
    assert plan(memory_plan, sdxl, 20, device="cpu", precision="fp32").name == "tiled"


def test_low_always_tiles_no_larger_than_1024(memory_plan, sdxl):
    for device, gb in (("cuda", 139), ("cpu", 64), ("mps", 64), ("cuda", None)):
        chosen = plan(memory_plan, sdxl, gb, device=device, memory="low")
        assert chosen.tile is not None and chosen.tile <= 1024, (device, chosen)


def test_full_is_taken_whatever_the_budget(memory_plan, sdxl):
    assert plan(memory_plan, sdxl, 4, memory="full").name == "full"


def test_unknown_budget_takes_the_first_plan(memory_plan, sdxl):
    assert plan(memory_plan, sdxl, None).name == "full"


def test_fp16_safe_vae_halves_the_decode(memory_plan, sdxl):
    from dataclasses import replace

    upcast = plan(memory_plan, sdxl, 139).peak_bytes
    fixed = plan(memory_plan, replace(sdxl, vae_upcast=False), 139).peak_bytes
    weights = memory_plan.weights_bytes(sdxl, "fp16")
    assert fixed - weights == pytest.approx((upcast - weights - sdxl.vae * 2) / 2, rel=0.01)


def test_fallbacks_decode_in_ever_smaller_tiles(memory_plan, sdxl):
    chosen = plan(memory_plan, sdxl, 139)
    steps = [chosen]
    while (after := steps[-1].fallback()) is not None:
        steps.append(after)
    assert [step.name for step in steps] == ["full", "tiled", "tiled", "offload", "sequential"]
    assert [step.lean for step in steps] == [False, False, True, False, False]
    tiles = [step.tile for step in steps[1:]]
    assert tiles == sorted(tiles, reverse=True) and tiles[0] > tiles[-1]
    assert all(step.placement == "device" for step in steps)  # the loaded pipeline stays as it is


def test_a_later_stage_asks_with_its_own_candidates(memory_plan):
    candidates = [
        memory_plan.Candidate("full", 10 * GB),
        memory_plan.Candidate("tiled", 3 * GB, tile=512),
    ]
    assert memory_plan.choose(candidates, 16 * GB).name == "full"
    assert memory_plan.choose(candidates, 8 * GB, what="upscaling").tile == 512
    with pytest.raises(memory_plan.DoesNotFit, match="upscaling needs"):
        memory_plan.choose(candidates, 2 * GB, what="upscaling")


def test_the_description_names_plan_tile_and_budget(memory_plan, sdxl):
    assert plan(memory_plan, sdxl, 8).describe().startswith("offload (")
    assert " of 8.0 GB" in plan(memory_plan, sdxl, 8).describe()


def test_estimate_text_needs_no_budget(memory_plan, sdxl):
    text = memory_plan.estimate_text(sdxl, 2048, 1024)
    assert text.startswith("Memory ") and "GB whole" in text and "GB lowest" in text
    assert "~" in memory_plan.estimate_text(memory_plan.FAMILIES["sd"], 1024, 512)


def test_the_catalog_vram_figures_are_the_planners(memory_plan):
    from conftest import source_module

    catalog = source_module("setup.model_catalog")
    sdxl = next(entry for entry in catalog.CURATED if entry.family == "sdxl")
    full = memory_plan.generation_candidates(sdxl.size, 1024, 1024, "cuda", "fp16")[0]
    assert sdxl.vram_gb == round(full.peak_bytes * memory_plan.MARGIN / GB, 1)
    assert sdxl.low_vram_gb < sdxl.vram_gb and not sdxl.vram_estimated
    assert all(entry.vram_estimated for entry in catalog.CURATED if entry.family != "sdxl")
    assert catalog.fp16_safe_vae("sdxl").repo_id == "madebyollin/sdxl-vae-fp16-fix"
    assert catalog.fp16_safe_vae("sd") is None


def test_the_budget_is_free_memory_capped_by_fraction_and_setting(memory_plan):
    assert memory_plan.budget(20 * GB) == 20 * GB
    assert memory_plan.budget(20 * GB, 80 * GB, fraction=0.1) == 8 * GB
    assert memory_plan.budget(20 * GB, 80 * GB, fraction=1.0) == 20 * GB
    assert memory_plan.budget(20 * GB, 80 * GB, cap_gb=6) == 6 * GB
    assert memory_plan.budget(4 * GB, 80 * GB, fraction=0.5, cap_gb=6) == 4 * GB
    assert memory_plan.budget(None, cap_gb=6) == 6 * GB and memory_plan.budget(None) is None


def test_a_later_stage_keeps_the_jobs_placement_and_plans_its_own_decode(memory_plan, sdxl):
    """Pole inpainting runs the loaded pipeline on 448 px windows (a 2048x1024 world): under offload
    its plan is an offload one whatever the budget, on the device the window decodes plainly when it fits."""
    job = plan(memory_plan, sdxl, 8)
    assert job.placement == "offload"

    def stage(placement, budget_gb, memory="auto"):
        return memory_plan.plan_stage(
            sdxl, 448, 448, "cuda", "fp16", int(budget_gb * GB), memory, placement, "repairing the poles"
        )

    assert stage("offload", 8).placement == "offload" and stage("offload", 139).name == "offload"
    assert stage("device", 139).name == "full" and stage("device", 139).tile is None
    assert stage("device", 139, "low").tile <= memory_plan.LOW_TILE
    with pytest.raises(memory_plan.DoesNotFit, match="repairing the poles needs about"):
        stage("device", 2)


def test_a_stage_in_windows_counts_one_windows_denoise(memory_plan, sdxl):
    """The detail pass over an 8192x4096 SDXL world denoises 1024 px windows, one at a time. Under model
    offload the UNet's activations add to the tiles' peak, so counting a whole 8K image's (13 GB in
    fp16) would refuse a 12 GB card that one window's fits with 768 px tiles. Its feature maps live in RAM:
    stored, 64 GB of float32 maps, which no workstation of 64 GB holds; lean, 24 GB, which it does."""

    def stage(window_pixels, ram_gb=None):
        ram = None if ram_gb is None else int(ram_gb * GB)
        return memory_plan.plan_stage(
            sdxl, 8192, 4096, "cuda", "fp16", 12 * GB, "auto", "offload", "adding detail", window_pixels, ram
        )

    whole = memory_plan.generation_candidates(sdxl, 8192, 4096, "cuda", "fp16")
    windowed = memory_plan.generation_candidates(sdxl, 8192, 4096, "cuda", "fp16", True, 1024 * 1024)
    assert all(w.peak_bytes <= c.peak_bytes for w, c in zip(windowed, whole, strict=True))
    stored = next(c for c in windowed if c.name == "offload" and not c.lean)
    assert stored.ram_bytes >= 64 * GB  # the maps alone: 512 values per pixel in float32
    chosen = stage(1024 * 1024, ram_gb=56)  # what a 64 GB workstation has available
    assert chosen.placement == "offload" and chosen.tile == 768 and chosen.lean and chosen.storage == "cpu"
    assert chosen.peak_bytes * memory_plan.MARGIN <= 12 * GB
    lean = next(c for c in windowed if c.name == "offload" and c.lean and c.tile == 768)
    assert lean.ram_bytes <= memory_plan.ram_budget(56 * GB) < stored.ram_bytes
    with pytest.raises(memory_plan.NotEnoughRam, match=r"needs about [\d.]+ GB of the computer's memory"):
        stage(1024 * 1024, ram_gb=28)  # a 32 GB workstation: refused in words, not killed by the system
    with pytest.raises(memory_plan.DoesNotFit):  # counted whole, no offload plan fits
        stage(None)


def test_every_chosen_plan_fits_the_computers_ram(memory_plan, sdxl):
    for size in ((2048, 1024), (4096, 2048), (8192, 4096)):
        for device, budgets in (("cuda", (139, 24, 12, 8, 6)), ("cpu", (None,))):
            for ram_gb in (8, 16, 32, 64, 128):
                for budget_gb in budgets:
                    try:
                        chosen = plan(
                            memory_plan, sdxl, budget_gb, *size, device=device, ram_bytes=int(ram_gb * GB)
                        )
                    except memory_plan.DoesNotFit:
                        continue
                    candidates = memory_plan.generation_candidates(sdxl, *size, device, "fp16")
                    used = next(
                        c.ram_bytes
                        for c in candidates
                        if (c.name, c.tile, c.lean) == (chosen.name, chosen.tile, chosen.lean)
                    )
                    assert used <= memory_plan.ram_budget(ram_gb * GB), (size, device, ram_gb, chosen)


def test_offload_keeps_its_weights_in_ram_and_a_cpu_all_of_it(memory_plan, sdxl):
    candidates = memory_plan.generation_candidates(sdxl, 2048, 1024, "cuda", "fp16")
    full = candidates[0]
    offload = next(c for c in candidates if c.name == "offload")
    assert full.ram_bytes < 1 * GB  # the weights are on the device: RAM holds the image's post-processing
    assert offload.ram_bytes > memory_plan.weights_bytes(sdxl, "fp16")
    on_cpu = memory_plan.generation_candidates(sdxl, 2048, 1024, "cpu", "fp32")
    assert all(c.ram_bytes >= c.peak_bytes for c in on_cpu)
    with pytest.raises(memory_plan.NotEnoughRam, match="stays for Blender and the system"):
        plan(memory_plan, sdxl, None, device="cpu", precision="fp32", ram_bytes=8 * GB)


def test_the_ram_reserve_is_stated_and_the_real_figure_is_read(memory_plan):
    assert memory_plan.ram_budget(None) is None
    assert memory_plan.ram_budget(4 * GB) == 2 * GB  # at least RAM_RESERVE_MIN stays free
    assert memory_plan.ram_budget(100 * GB) == int(85 * GB)  # 15% of a large machine's
    available = memory_plan.available_ram_bytes()
    assert available is None or available > 0
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        assert available <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_the_last_resort_of_a_stage_counts_its_ram_too(memory_plan, sdxl):
    """Beyond every plan the detail pass keeps lean maps in RAM: for an 8192x4096 SDXL world about 24 GB
    of float32 maps, which a computer with 16 GB available must refuse rather than be killed."""
    last = memory_plan.maps_in_ram(sdxl, 8192, 4096, "fp16", 64 * GB, "adding detail")
    assert (last.tile, last.storage, last.lean) == (512, "cpu", True)
    assert 24 * GB <= last.ram_bytes <= memory_plan.ram_budget(64 * GB)
    with pytest.raises(
        memory_plan.NotEnoughRam, match=r"adding detail needs about 25\.5 GB .* 16\.0 GB is free"
    ):
        memory_plan.maps_in_ram(sdxl, 8192, 4096, "fp16", 16 * GB, "adding detail")
    assert memory_plan.maps_in_ram(sdxl, 8192, 4096, "fp16", None, "adding detail") == last  # unknown RAM


# The caps: Z-Image and klein on 8 GiB, Qwen-Image on 16 GiB. Estimates until a GPU measures them.
CAPS = [("zimage", 2048, 1024, 8), ("flux2-klein", 1024, 1024, 8), ("qwen-image", 2048, 1024, 16)]


@pytest.mark.parametrize(("family", "width", "height", "cap_gb"), CAPS)
def test_each_transformer_family_fits_its_card_as_auto_quantises_it(
    memory_plan, family, width, height, cap_gb
):
    from conftest import source_module

    quantize, families = source_module("engine.quantize"), source_module("engine.families")
    size, budget = memory_plan.FAMILIES[family], cap_gb * GB
    used = quantize.resolve("auto", "cuda", families.named(family), size.unet, budget)
    planned = quantize.planned_size(size, used, 2)
    chosen = plan(memory_plan, planned, cap_gb, width, height, ram_bytes=64 * GB)
    assert used in ("8bit", "4bit") and chosen.peak_bytes * memory_plan.MARGIN <= budget, (used, chosen)
    assert planned.unet == pytest.approx(size.unet * quantize.BYTES_PER_PARAMETER[used] / 2)
    assert chosen.placement in ("device", "offload")  # quantised weights move whole or not at all


def test_unquantised_transformers_offload_by_groups_of_blocks(memory_plan, sdxl):
    zimage = memory_plan.FAMILIES["zimage"]
    chosen = plan(memory_plan, zimage, 8, ram_bytes=64 * GB)
    assert chosen.name == chosen.placement == "group" and chosen.tile is not None
    # One block and the next, a few percent outside the blocks: far below model offload's whole 6B model.
    assert chosen.peak_bytes < 0.3 * zimage.unet * 2 + 2 * GB
    steps = [plan(memory_plan, zimage, gb, ram_bytes=64 * GB).name for gb in (80, 24, 16, 8, 2)]
    order = memory_plan.PLANS
    assert [order.index(name) for name in steps] == sorted(order.index(name) for name in steps)
    assert "group" not in {plan(memory_plan, sdxl, gb).name for gb in (139, 16, 12, 8, 6, 4)}  # UNets


def test_the_estimate_shows_a_transformers_quantised_needs(memory_plan):
    text = memory_plan.estimate_text(memory_plan.FAMILIES["qwen-image"], 2048, 1024)
    assert "8-bit ~" in text and "4-bit ~" in text
    assert "bit" not in memory_plan.estimate_text(memory_plan.FAMILIES["sdxl"], 2048, 1024)


def test_a_props_shape_stage_runs_beside_the_image_model_or_alone(memory_plan, sdxl):
    """TripoSR's ~6 GB beside SDXL's resident weights on a 24 GB card; alone (SDXL moved off) on 12 GB;
    beside an offloaded model, whose weights leave the device after each call; refused under 6.9 GB."""
    assert memory_plan.plan_prop_shape(sdxl, "fp16", "device", 24 * GB) == "beside"
    assert memory_plan.plan_prop_shape(sdxl, "fp16", "device", 12 * GB) == "alone"
    assert memory_plan.plan_prop_shape(sdxl, "fp16", "offload", 8 * GB) == "beside"
    assert memory_plan.plan_prop_shape(sdxl, "fp16", "device", None) == "beside"  # unknown: as before
    with pytest.raises(memory_plan.DoesNotFit, match=r"shape model needs about 6\.9 GB"):
        memory_plan.plan_prop_shape(sdxl, "fp16", "device", 6 * GB)
