"""Python callback models: the exact Gaussian ε as a numpy function against the built-in mixture,
the sequential fixed point, the rows the sampler evaluates, and every way a callback can fail."""

import traceback

import numpy as np
import pytest

import picardiff

MU, S = np.array([1.5, -0.5]), 0.7
N_TRAIN = 1000
# diffusers' ddpm-linear: β linear from 1e-4 to 0.02, ᾱ_t = Π_{j≤t} (1 − β_j).
ALPHA_BAR = np.cumprod(1.0 - np.linspace(1e-4, 0.02, N_TRAIN))


def gaussian_eps(x, t):
    """ε̂ of x_t = α x0 + σ ε with x0 ~ N(μ, s² I): σ (x − α μ) / (α² s² + σ²), t a timestep index."""
    ab = ALPHA_BAR[t.astype(np.int64)][:, None]
    alpha, sigma = np.sqrt(ab), np.sqrt(1.0 - ab)
    return (sigma * (x - alpha * MU) / (alpha**2 * S**2 + sigma**2)).astype(np.float32)


def mixture(tmp_path):
    p = tmp_path / "gauss.json"
    p.write_text(f'{{"weights": [1.0], "means": [[{MU[0]}, {MU[1]}]], "stds": [{S}]}}')
    return picardiff.load(p)


def test_callback_equals_the_builtin_mixture(tmp_path):
    cb = picardiff.callback_model(gaussian_eps, 2, schedule="ddpm-linear")
    assert (cb.kind, cb.dim, cb.output, cb.schedule, cb.path) == ("callback", 2, "epsilon", "ddpm-linear", None)
    # picard named: a callback model runs picard under the default (auto), the mixture auto's choice.
    kw = dict(steps=100, rule="ddpm", batch=16, seed=4, sampler="picard")
    got, st = cb.sample(**kw)
    want, _ = mixture(tmp_path).sample(schedule="ddpm-linear", **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    assert st["schedule"] == "ddpm-linear" and st["train_steps"] == N_TRAIN


@pytest.mark.parametrize("rule", ["ddpm", "ddim"])
def test_callback_window_1_is_the_sequential_sampler_bit_for_bit(rule):
    cb = picardiff.callback_model(gaussian_eps, 2, schedule="ddpm-linear")
    par, seq, st = cb.compare(steps=50, rule=rule, batch=3, window=1, tol=0.0)
    assert np.array_equal(par, seq) and st["max_abs_diff"] == 0.0
    par, seq, _ = cb.compare(steps=50, rule=rule, batch=3, window=8, tol=0.0)
    assert np.array_equal(par, seq)  # row-wise numpy maths: any window is exact


def test_callback_rows_and_times():
    calls = []

    def fn(x, t):
        assert x.dtype == np.float32 and t.dtype == np.float32 and x.flags.c_contiguous
        calls.append((x.shape, t.copy()))
        return np.zeros_like(x)

    cb = picardiff.callback_model(fn, 3, schedule="ddpm-linear")
    cb.sample(steps=10, rule="ddim", batch=2, sampler="sequential")
    assert [c[0] for c in calls] == [(2, 3)] * 10
    # leading spacing, 1000 train steps, 10 steps: 900, 800, ..., 0.
    assert [float(c[1][0]) for c in calls] == [900.0 - 100 * i for i in range(10)]
    calls.clear()
    _, st = cb.sample(steps=10, rule="ddim", batch=2, window=4, tol=0.0)
    assert max(c[0][0] for c in calls) == 2 * 4 and st["window"] == 4


def test_callback_may_return_other_array_likes():
    cb = picardiff.callback_model(lambda x, t: (0.1 * x).tolist(), 2, schedule="ddpm-linear")
    with pytest.raises(ValueError, match="dtype float64"):
        cb.sample(steps=5, rule="ddim")  # a list becomes float64: refused, not converted
    cb = picardiff.callback_model(lambda x, t: np.asfortranarray(0.1 * x), 2, schedule="ddpm-linear")
    a, _ = cb.sample(steps=5, rule="ddim", batch=3)
    cb = picardiff.callback_model(lambda x, t: 0.1 * x, 2, schedule="ddpm-linear")
    b, _ = cb.sample(steps=5, rule="ddim", batch=3)
    assert np.array_equal(a, b)


class Boom(RuntimeError):
    pass


def failing_network(x, t):
    if np.any(t < 500):
        raise Boom(f"boom at t={t.min():g}")
    return np.zeros_like(x)


def test_callback_exception_is_reraised_with_its_traceback():
    cb = picardiff.callback_model(failing_network, 2, schedule="ddpm-linear")
    with pytest.raises(Boom, match="boom at t=") as info:
        cb.sample(steps=10, rule="ddpm", batch=2)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.name == "failing_network" for f in frames), frames
    # The model is usable again afterwards (nothing left over from the failed run).
    ok = picardiff.callback_model(lambda x, t: np.zeros_like(x), 2, schedule="ddpm-linear")
    ok.sample(steps=10, rule="ddpm")


def test_callback_keyboard_interrupt_propagates():
    def fn(x, t):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        picardiff.callback_model(fn, 2, schedule="ddpm-linear").sample(steps=3, rule="ddpm")


@pytest.mark.parametrize(
    "ret,match",
    [
        (lambda x: x[:, :1], r"shape \[\d+, 1\].*expected float32 of shape \[\d+, 2\]"),
        (lambda x: x.astype(np.float64), "dtype float64"),
        (lambda x: x.ravel(), r"shape \[\d+\]"),
        (lambda x: 3.0, r"shape \[\]"),
    ],
)
def test_callback_wrong_result_is_a_value_error(ret, match):
    cb = picardiff.callback_model(lambda x, t: ret(x), 2, schedule="ddpm-linear")
    with pytest.raises(ValueError, match=match):
        cb.sample(steps=4, rule="ddpm", batch=3)


def test_callback_non_finite_result_is_a_picardiff_error():
    cb = picardiff.callback_model(lambda x, t: np.full_like(x, np.nan), 2, schedule="ddpm-linear")
    with pytest.raises(picardiff.PicardiffError, match="NaN at row 0"):
        cb.sample(steps=4, rule="ddpm")


def test_callback_model_arguments():
    f = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="callable"):
        picardiff.callback_model(3, 2, schedule="ddpm-linear")
    with pytest.raises(ValueError, match="dim"):
        picardiff.callback_model(f, 0, schedule="ddpm-linear")
    with pytest.raises(ValueError, match="unknown model output"):
        picardiff.callback_model(f, 2, "noise", schedule="ddpm-linear")
    with pytest.raises(ValueError, match="unknown schedule"):
        picardiff.callback_model(f, 2, schedule="linear")
    with pytest.raises(TypeError):
        picardiff.callback_model(f, 2)  # schedule is required
    cb = picardiff.callback_model(f, 2, "v", schedule="vp-linear")
    assert cb.output == "v"
    with pytest.raises(ValueError, match="schedule: the callback model was created with `vp-linear`"):
        cb.sample(schedule="ou", steps=4, rule="exp-ode")
    with pytest.raises(ValueError, match="device: a callback model runs on the CPU only"):
        cb.sample(steps=4, rule="exp-ode", device="cuda")


def test_callback_continuous_schedule():
    """VP-linear: model time is t itself; the zero-ε network keeps the sampler finite."""
    times = []

    def fn(x, t):
        times.append(t.copy())
        return np.zeros_like(x)

    cb = picardiff.callback_model(fn, 2, schedule="vp-linear")
    x, st = cb.sample(steps=8, rule="exp-ode", sampler="sequential")
    assert x.shape == (1, 2) and st["horizon"] == 1.0
    assert times[0][0] == pytest.approx(1.0) and times[-1][0] > 1e-3
