"""``--batch-size auto``: the model given fewer images at once draws the same random numbers and
computes the same values, up to the rounding of the model's own kernels (a CPU convolution rounds
differently for 12 images than for 5 + 5 + 2: in the last digits, which :func:`_same` allows and
nothing else); out-of-memory errors (simulated: the test model raises CUDA's error above a size,
or once mid-measurement) make a measurement run again with fewer images, keep the finished work,
and end at one image."""

from __future__ import annotations

import copy
import json
import math
import os
import re

import pytest
import torch
from tf32_helpers import record_tf32, tf32_allowed, tf32_flags
from torch import nn

from invarbench.cards import resolve_card
from invarbench.data import load_eval_data
from invarbench.errors import OptionError, ValidationError
from invarbench.evaluation import EvalOptions, evaluate
from invarbench.evaluation.measure import measure_batch
from invarbench.evaluation.memory import ChunkedModel, MemoryPlan, OutOfMemory, is_out_of_memory
from invarbench.evaluation.speed import compile_model, reproducible_float32
from invarbench.measurements import ALWAYS, MEASUREMENTS
from invarbench.models.loading import load_model
from invarbench.models.wrapper import ModelWrapper
from invarbench.store import Store
from invarbench.store.codec import encode_floats
from invarbench.suites.schema import Suite

# Test-sized settings for the measurements whose defaults take long. The suite holds every registered
# measurement (the others with their defaults), so that a new one is measured in fewer images here too.
SMALL = {
    "pgd_linf": {"eps": 0.1, "steps": 4, "apgd": {"steps": 3, "targets": 3}},
    "pgd_l2": {"eps": 1.0, "steps": 4},
    "min_norm": {"steps": 4},
    "nspgd": {"eta": 0.1, "delta": 0.05, "max_iter": 6, "pairs": {"num_pairs": 8}},
    "path_width": {"points": [0, 3], "directions": 6, "radii": [1, 2, 4], "max_pairs": 4},
    "ece": {"bins": 10},
}
SUITE = Suite.model_validate(
    {
        "name": "test",
        "version": 1,
        "dataset": "mnist5k",
        "description": "unit test",
        "changelog": ["1: x"],
        "num_examples": 12,
        "seed": 3,
        "checks": {"examples": 4},
        "measurements": {m.name: SMALL.get(m.name, {}) for m in MEASUREMENTS.in_order() if m.name != ALWAYS},
    }
)


class _Oom(nn.Module):
    """The reference LeNet, which raises CUDA's out-of-memory error when given more than ``most``
    images at once, or (``at_call``) once, at that call of its forward pass."""

    def __init__(self, net: nn.Module, most: int | None = None, at_call: int | None = None) -> None:
        super().__init__()
        self.net, self.most, self.at_call, self.calls = net, most, at_call, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if (self.most is not None and x.shape[0] > self.most) or self.calls == self.at_call:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} images")
        return self.net(x)


@pytest.fixture(scope="module")
def lenet() -> ModelWrapper:
    return load_model(resolve_card("mnist5k/lenet-standard"), torch.device("cpu")).wrapper


@pytest.fixture(scope="module")
def data():
    return load_eval_data("mnist5k", limit=12)


def _wrapped(lenet: ModelWrapper, **oom) -> ModelWrapper:
    """The reference model's wrapper around an :class:`_Oom` LeNet."""
    wrapper = copy.deepcopy(lenet)
    wrapper.model = _Oom(wrapper.model, **oom)
    return wrapper


def _same(got, want) -> bool:
    """Equal values: every flag, count, index and class exactly, floats to 1e-5 (relative)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7) or (math.isnan(got) and math.isnan(want))
    return type(got) is type(want) and got == want


def _same_batch(got, want) -> bool:
    """The same per-example values (see :func:`_same`), and the same image strips (by name)."""
    return _same(got[0], want[0]) and sorted(got[1]) == sorted(want[1])


def _measure(model, data, memory=None):
    gen = torch.Generator().manual_seed(11)
    return measure_batch(model, data, 0, 12, SUITE, gen, memory=memory)


@pytest.fixture(scope="module")
def reference(lenet, data):
    return _measure(lenet, data)


@pytest.fixture(scope="module")
def model_runners(lenet, data) -> list[str]:
    """The suite's measurements that give the model images (every one but those that only read the clean
    logits, such as ece), as a run with no limit records them."""
    plan = MemoryPlan(auto=True)
    _measure(lenet, data, plan)
    assert ALWAYS in plan.used and set(plan.used) <= {ALWAYS, *SUITE.measurements}
    return sorted(plan.used)


def test_fewer_images_at_once_change_no_number(lenet, data, reference, model_runners):
    plan = MemoryPlan(auto=True)
    plan.limits = dict.fromkeys(model_runners, 5)
    chunked = _measure(lenet, data, plan)
    assert _same_batch(chunked, reference)
    assert not _same(chunked[0]["clean"]["confidence"], [c + 1e-4 for c in reference[0]["clean"]["confidence"]])
    assert plan.used == dict.fromkeys(model_runners, 5) and plan.backoffs == 0
    unlimited = MemoryPlan(auto=True)
    assert _measure(lenet, data, unlimited) == reference  # nothing split: exactly equal
    assert unlimited.used["pgd_linf"] == 12 and unlimited.used["path_width"] > 12  # its images, not examples


def test_out_of_memory_above_a_size_backs_off_to_a_size_that_fits(lenet, data, reference, model_runners):
    plan = MemoryPlan(auto=True)
    assert _same_batch(_measure(_wrapped(lenet, most=4), data, plan), reference)
    assert max(plan.used.values()) <= 4 and plan.used["pgd_linf"] == 3  # 12 -> 6 -> 3
    assert plan.limits["clean"] == 3 and set(plan.limits) == set(model_runners) and max(plan.limits.values()) <= 4
    again = plan.backoffs
    assert _same_batch(_measure(_wrapped(lenet, most=4), data, plan), reference)  # the next batch: at the limits
    assert plan.backoffs == again


def test_out_of_memory_in_the_middle_of_a_measurement_redoes_it_alone_from_its_random_state(lenet, data, reference):
    model = _wrapped(lenet, at_call=9)  # the clean pass is call 1; PGD L-inf's steps follow
    plan = MemoryPlan(auto=True)
    assert _same_batch(_measure(model, data, plan), reference)
    assert plan.backoffs == 1 and plan.limits == {"pgd_linf": 6}


def test_out_of_memory_with_one_image_or_without_auto_is_one_clear_error(lenet, data):
    with pytest.raises(OutOfMemory, match="^out of memory in clean with one image at a time: the model does not fit"):
        _measure(_wrapped(lenet, most=0), data, MemoryPlan(auto=True))
    with pytest.raises(OutOfMemory, match=r"^out of memory in clean with 12 image\(s\) at once: use --batch-size auto"):
        _measure(_wrapped(lenet, most=4), data, MemoryPlan(auto=False))


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_the_chunked_model_is_the_model_row_for_row_with_gradients(lenet, data):
    x = data.x[:7].clone().requires_grad_(True)
    whole = lenet(x)
    (g_whole,) = torch.autograd.grad(whole.sum(), x)
    chunked = ChunkedModel(lenet, 3)
    parts = chunked(x)
    (g_parts,) = torch.autograd.grad(parts.sum(), x)
    assert torch.allclose(parts, whole, rtol=1e-5, atol=1e-4) and torch.allclose(g_parts, g_whole, rtol=1e-4, atol=1e-6)
    assert chunked.largest == 3 and parts.grad_fn is not None
    assert chunked.input_shape == lenet.input_shape  # the wrapper's attributes pass through


TINY_SUITE = """\
name: tiny-auto
version: 1
dataset: mnist5k
description: a few examples and steps, for the tests of --batch-size auto
changelog: ["1: first version"]
include: quick/mnist5k
num_examples: 12
checks: {examples: 4}
measurements:
  pgd_linf: {steps: 2, apgd: {steps: 2, targets: 2}}
  pgd_l2: {steps: 2, apgd: {steps: 2, targets: 2}}
  min_norm: {steps: 2}
  nspgd:
    max_iter: 3
    pairs: {num_pairs: 3}
  path_width:
    points: [0, 2]
    directions: 2
    max_pairs: 2
"""


def _run(tmp_path, device="cpu", **options):
    tmp_path.mkdir(exist_ok=True)
    suite = tmp_path / "tiny.yaml"
    suite.write_text(TINY_SUITE)
    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    outcome = evaluate(
        resolve_card("mnist5k/lenet-standard"), store, EvalOptions(suite=str(suite), device=device, **options)
    )
    run = store.get_run(outcome.run_id)
    values = json.dumps(encode_floats(store.stored_batches(outcome.run_id)), sort_keys=True)
    files = {a.name: a.data for a in run.artifacts}
    store.close()
    return outcome, run, values, files


def test_batch_size_auto_settles_on_the_cpu_has_the_numbers_of_250_and_is_recorded(tmp_path):
    auto, auto_run, auto_values, auto_files = _run(tmp_path / "auto", batch_size="auto")
    fixed, fixed_run, fixed_values, fixed_files = _run(tmp_path / "fixed", batch_size=250)
    assert auto_run.batch_size == fixed_run.batch_size == 250 and auto_values == fixed_values
    assert [(m.name, m.value) for m in auto_run.metrics] == [(m.name, m.value) for m in fixed_run.metrics]
    assert "execution.json" not in fixed_files and fixed.execution is None  # a plain run records nothing new
    execution = json.loads(auto_files["execution.json"])
    assert execution == auto.execution
    assert execution["batch_size"] == "auto" and execution["processes"] == 1 and execution["compile"] is None
    assert execution["images_at_once"]["pgd_linf"] == 12 and execution["images_at_once"]["path_width"] > 12


def _determinism() -> tuple:
    """cuDNN deterministic, deterministic algorithms, warn only, cuDNN benchmark, $CUBLAS_WORKSPACE_CONFIG."""
    return (
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )


def test_float32_means_ieee_float32_deterministic_on_a_gpu_and_the_settings_are_restored(tmp_path, monkeypatch):
    """PyTorch lets cuDNN convolutions compute float32 in TF32 by default (a 10-bit mantissa, and kernels that
    change with the batch size): every forward and backward pass of a run computes with TF32 off, on a GPU with
    deterministic kernels asked for, and the process's own settings are back after the run, also after an
    error inside the block."""
    with tf32_allowed():
        with reproducible_float32():
            assert tf32_flags() == (False, False)
        assert tf32_flags() == (True, True)
        before = _determinism()
        assert before[:3] == (False, False, False)  # PyTorch's defaults in a test process
        with reproducible_float32(torch.device("cpu")):
            assert tf32_flags() == (False, False) and _determinism() == before  # a CPU run leaves them alone
        with reproducible_float32(torch.device("cuda")):  # settable without a GPU
            assert tf32_flags() == (False, False)
            assert _determinism() == (True, True, True, False, ":4096:8")
        assert tf32_flags() == (True, True) and _determinism() == before
        with pytest.raises(KeyError), reproducible_float32():
            raise KeyError("inside")
        assert tf32_flags() == (True, True)
        seen = record_tf32(monkeypatch)
        _run(tmp_path)
        assert tf32_flags() == (True, True)
    assert seen == {"forward": {(False, False)}, "backward": {(False, False)}}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_float32_runs_on_a_gpu_are_bit_identical_and_not_batch_dependent(tmp_path):
    """With TF32 and cuDNN's free choice of kernels, two runs on one GPU differed in their searches' last bits
    and a ResNet-56 was flagged batch-dependent; under reproducible_float32 neither happens."""
    first, first_run, first_values, _ = _run(tmp_path / "first", device="cuda")
    second, second_run, second_values, _ = _run(tmp_path / "second", device="cuda")
    assert first_run.device.startswith("cuda:") and first_values == second_values
    assert [(m.name, m.value) for m in first_run.metrics] == [(m.name, m.value) for m in second_run.metrics]
    assert "batch_dependent_outputs" not in first.flags


def test_bf16_is_recorded_as_the_model_dtype_and_bad_values_are_one_line(tmp_path):
    outcome, run, _, files = _run(tmp_path, precision="bf16")
    assert run.model_dtype == outcome.model_dtype == "bfloat16 (autocast)"
    assert json.loads(files["execution.json"])["precision"] == "bf16"
    with pytest.raises(ValidationError, match="^unknown precision 'fp8': use one of float32, bf16$"):
        evaluate(resolve_card("mnist5k/lenet-standard"), Store("sqlite://"), EvalOptions(precision="fp8"))
    for bad in ("0", "big"):
        with pytest.raises(ValidationError, match="^batch_size must be"):
            evaluate(resolve_card("mnist5k/lenet-standard"), Store("sqlite://"), EvalOptions(batch_size=bad))


class _Shifted(nn.Module):
    """A stand-in for a compiled network: the same logits plus ``shift`` (inductor's kernels round
    differently; here by a known amount), or raising as a compiler without a C compiler does."""

    def __init__(self, net: nn.Module, shift: float, fails: bool = False) -> None:
        super().__init__()
        self.net, self.shift, self.fails = net, shift, fails

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fails:
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore lines")
        return self.net(x) + self.shift


def test_compile_measures_and_records_what_it_changes_or_fails_in_one_line(lenet, data, monkeypatch):
    model = copy.deepcopy(lenet)
    monkeypatch.setattr(torch, "compile", lambda net: _Shifted(net, 1e-3))
    effect = compile_model(model, data.x[:4], data.y[:4])
    assert isinstance(model.model, _Shifted) and effect["examples"] == 4 and effect["predictions_changed"] == 0
    assert effect["max_abs_logit_difference"] == pytest.approx(1e-3, rel=1e-3)
    assert 0 < effect["max_abs_gradient_difference"] < 1e-3  # the same network: rounding only
    broken = copy.deepcopy(lenet)
    monkeypatch.setattr(torch, "compile", lambda net: _Shifted(net, 0.0, fails=True))
    message = "torch.compile failed on this model (RuntimeError: InvalidCxxCompiler: No working C++ compiler found)"
    with pytest.raises(OptionError, match="^" + re.escape(message + "; evaluate without compile") + "$") as failed:
        compile_model(broken, data.x[:4], data.y[:4])
    assert failed.value.naming("--compile") == message + "; evaluate without --compile"
    assert not isinstance(broken.model, _Shifted)  # the eager network is back
