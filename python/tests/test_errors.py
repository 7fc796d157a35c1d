"""Errors: ValueError for bad arguments and arrays (refused before anything runs), OSError for
files, PicardiffError for failed runs; never a Rust panic."""

import numpy as np
import pytest

import picardiff
from conftest import MIXTURE_2D, MOONS

KW = dict(schedule="ddpm-linear", steps=20, rule="ddpm")


@pytest.fixture(scope="module")
def mix():
    return picardiff.load(MIXTURE_2D)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        picardiff.load(tmp_path / "nope.json")
    with pytest.raises(OSError):
        picardiff.info(tmp_path / "nope.safetensors")
    assert issubclass(picardiff.PicardiffError, Exception)
    assert not issubclass(picardiff.PicardiffError, (ValueError, OSError))


def test_malformed_models_are_picardiff_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"weights": [1.0], "means": [[0, 0]], "stds": [-1]}')
    with pytest.raises(picardiff.PicardiffError, match="invalid model"):
        picardiff.load(bad)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(picardiff.PicardiffError):
        picardiff.load(junk)
    with pytest.raises(picardiff.PicardiffError, match="without config.json"):
        picardiff.load(tmp_path)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(schedule="ddpm-linear", steps=20), "rule: required"),
        (dict(steps=20, rule="ddpm"), "schedule: required with a mixture model"),
        (dict(schedule="ddpm-linear", rule="ddpm"), "steps: required for the discrete schedule"),
        (dict(KW, steps=0), "steps: must be at least 1"),
        (dict(KW, sampler="fast"), "sampler: unknown sampler `fast`"),
        (dict(KW, rule="euler"), "`euler` is the flow-matching rule"),
        (dict(KW, schedule="linear"), "unknown schedule `linear`"),
        (dict(KW, spacing="even"), "spacing"),
        (dict(KW, tol=-1.0), "tol: must be finite and >= 0"),
        (dict(KW, tol=float("nan")), "tol: must be finite"),
        (dict(KW, window=0), "window: must be at least 1"),
        (dict(KW, batch=0), "batch: must be at least 1"),
        (dict(KW, picard_form="sum"), "picard_form: unknown form `sum`"),
        (dict(KW, eta=-0.5), "eta: must be finite and >= 0"),
        (dict(KW, sampler="blocks", block_len=-1.0), "block_len: must be finite and > 0"),
        (dict(KW, device="gpu"), "device: unknown device `gpu`"),
        (dict(KW, set={"clip_sample": False}), "set: config overrides apply to a Diffusion Policy"),
        (dict(KW, cond=np.zeros((1, 3), np.float32)), "cond: this model takes no per-sample conditioning"),
        (dict(schedule="ou", rule="exp-sde", grid="hex"), "grid: unknown grid `hex`"),
        (dict(KW, steps=20_000_000), "steps: at most"),
    ],
)
def test_bad_arguments_are_value_errors(mix, kw, match):
    with pytest.raises(ValueError, match=match):
        mix.sample(**kw)


def test_positional_and_unknown_arguments_are_type_errors(mix):
    with pytest.raises(TypeError):
        mix.sample("picard")
    with pytest.raises(TypeError):
        mix.sample(windw=3, **KW)


def test_mlp_names_its_schedule():
    with pytest.raises(ValueError, match="schedule: the model was trained with `ddpm-linear`, not `cosine`"):
        picardiff.load(MOONS).sample(schedule="cosine", steps=10, rule="ddpm")


def test_compare_refuses_the_sequential_sampler(mix):
    with pytest.raises(ValueError, match="compare runs the sequential sampler against picard or blocks"):
        mix.compare(sampler="sequential", **KW)


def test_not_converged_is_a_picardiff_error(mix):
    with pytest.raises(picardiff.PicardiffError, match="not converged after 2 iterations"):
        mix.sample(sampler="picard", max_iters=2, tol=0.0, **KW)


@pytest.mark.skipif(picardiff.cuda_available, reason="a CUDA build")
def test_cuda_without_the_feature_is_a_picardiff_error(mix):
    with pytest.raises(picardiff.PicardiffError, match="built without CUDA support"):
        mix.sample(device="cuda", **KW)
    _, st = mix.sample(device="auto", **KW)
    assert st["device"] == "cpu"


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((2, 2)), "init: expected dtype float32, got float64"),
        (np.zeros((2, 2), np.float16), "expected dtype float32"),
        (np.zeros((2, 2), np.int32), "expected dtype float32"),
        (np.zeros((2, 2), ">f4"), "expected dtype float32, got >f4"),
        (np.zeros((2, 4), np.float32)[:, ::2], "not C-contiguous"),
        (np.asfortranarray(np.zeros((2, 3), np.float32)), "not C-contiguous"),
        ([[0.0, 0.0]], "expected a numpy.ndarray of float32, got list"),
        (np.zeros((2, 3), np.float32), r"init: expected a float32 array of shape \[2, 3\]|shape \[2, 2\] \(\[batch, dim\]\), got \[2, 3\]"),
        (np.zeros((2,), np.float32), r"expected a float32 array of shape \[2, 2\] \(\[batch, dim\]\), got \[2\]"),
    ],
)
def test_bad_arrays_are_refused_before_anything_runs(mix, arr, match):
    with pytest.raises(ValueError, match=match):
        mix.sample(init=arr, **KW)


def test_noise_shape_is_checked(mix):
    with pytest.raises(ValueError, match=r"noise: expected a float32 array of shape \[20, 3, 2\]"):
        mix.sample(batch=3, noise=np.zeros((19, 3, 2), np.float32), **KW)
    with pytest.raises(ValueError, match=r"init: expected a float32 array of shape \[3, 2\]"):
        mix.sample(batch=3, init=np.zeros((4, 2), np.float32), **KW)


def test_an_explicit_conversion_is_accepted(mix):
    x = np.zeros((4, 2))[:, ::-1]
    out, _ = mix.sample(init=np.ascontiguousarray(x, dtype=np.float32), **KW)
    assert out.shape == (4, 2)


def test_flow_runs_through_the_shared_run_spec(mix):
    # Flow matching comes with the library's run specification (it was refused before the spec).
    out, seq, stats = mix.compare(schedule="flow", rule="euler", steps=10, seed=3)
    assert out.shape == seq.shape == (1, 2)
    assert stats["grid"] == "diffusers" and stats["shift"] == 1.0
    assert stats["deviation_max"] < 1e-2
    with pytest.raises(TypeError, match="unexpected keyword argument 'windw'"):
        mix.sample(schedule="ddpm-linear", rule="ddpm", steps=10, windw=4)
