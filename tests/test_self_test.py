"""The self-test: runs offline on the CPU, proves the wrap, and explains a missing torch."""

import importlib
import sys

import pytest


@pytest.fixture(scope="module")
def self_test(addon):
    return importlib.import_module(addon.__name__ + ".generation.setup.self_test")


def test_self_test_passes_on_the_cpu(self_test):
    import diffusers
    import torch

    report = self_test.run(device="cpu", precision="auto")
    assert report.ok, report.summary()
    assert (report.device, report.precision) == ("cpu", "fp32")
    assert report.wrap_error < 1e-4 and 0 < report.seconds < 120
    assert report.torch_version == torch.__version__ and report.diffusers_version == diffusers.__version__
    summary = report.summary()
    assert summary.splitlines()[0] == "Promptscape self-test: OK"
    for words in ("cpu", "fp32", torch.__version__, diffusers.__version__, "64x32", "2 steps", "wrap error"):
        assert words in summary


def test_the_self_test_runs_on_the_device_auto_picks(self_test, addon):
    import torch

    devices = importlib.import_module(addon.__name__ + ".generation.engine.devices")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if devices.mps_available() else "cpu")
    report = self_test.run()
    assert report.ok and report.device == devices.resolve_device("auto") == expected


def test_a_missing_device_is_explained(self_test, addon):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    errors = importlib.import_module(addon.__name__ + ".generation.errors")
    with pytest.raises(errors.InvalidRequest, match="no CUDA GPU"):
        self_test.run(device="cuda")


def test_failed_report_lists_its_problems(self_test):
    report = self_test.SelfTestReport(device="cpu", precision="fp32", problems=["the world does not wrap"])
    assert not report.ok
    assert report.summary().splitlines()[0] == "Promptscape self-test: FAILED"
    assert "Problem: the world does not wrap" in report.summary()


def test_missing_torch_points_at_dependencies(self_test, addon, monkeypatch):
    errors = importlib.import_module(addon.__name__ + ".generation.errors")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(errors.MissingDependency) as caught:
        self_test.run()
    assert "torch" in str(caught.value)
    assert "Preferences > Add-ons > Promptscape > Dependencies" in str(caught.value)
