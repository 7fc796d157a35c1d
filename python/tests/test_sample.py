"""Loading the example models and sampling them: shapes, the CLI's defaults, the CLI's outputs,
the sequential fixed point of the parallel samplers, the inputs and the GIL."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import picardiff
from conftest import MIXTURE_2D, MIXTURE_64D, MOONS


def test_import_needs_no_torch():
    code = (
        "import sys, picardiff, picardiff.lerobot; "
        "assert 'torch' not in sys.modules and 'lerobot' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert picardiff.__version__
    assert picardiff.DEFAULT_WINDOW == 256


def test_load_examples():
    m = picardiff.load(MIXTURE_2D)
    assert (m.kind, m.dim, m.cond_dim, m.horizon, m.action_dim) == ("mixture", 2, 0, None, None)
    assert m.schedule is None and m.output == "epsilon"
    assert str(m.path).endswith("mixture_2d.json")
    mlp = picardiff.load(str(MOONS))
    assert (mlp.kind, mlp.dim, mlp.cond_dim, mlp.schedule) == ("mlp", 2, 0, "ddpm-linear")
    assert picardiff.info(MOONS) == mlp.summary()
    assert picardiff.info(MIXTURE_64D).startswith("Gaussian mixture (exact score): dim 64")
    assert "picardiff.Model" in repr(mlp)


def test_sample_shapes_and_stats():
    m = picardiff.load(MIXTURE_2D)
    x, st = m.sample(schedule="ddpm-linear", steps=50, rule="ddpm", batch=5)
    assert x.shape == (5, 2) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.all(np.isfinite(x))
    for key in ("rounds", "nfe", "wall_ms", "host_syncs", "sampler", "window", "tol", "steps"):
        assert key in st, key
    assert st["command"] == "sample" and st["device"] == "cpu"
    assert 0 < st["rounds"] <= 50


def test_cli_defaults():
    """sampler auto (its picard candidate: window 256 clamped to the steps, which then holds
    every step: drift at tol 0 stopped by the final samples, final_tol 1e-3), seed 0, leading
    spacing, 1000 train steps, batch 1; a longer grid slides: tol from the rule, scan."""
    m = picardiff.load(MIXTURE_2D)
    _, st = m.sample(schedule="ddpm-linear", steps=100, rule="ddpm")
    assert (st["sampler"], st["window"], st["tol"], st["picard_form"]) == ("auto", 100, 0.0, "drift")
    assert st["final_tol"] == 1e-3
    assert st["auto"]["chosen"] in ("sequential", "picard") and st["auto"]["rounds"] == 30
    want = m.sample(schedule="ddpm-linear", steps=100, rule="ddpm", sampler=st["auto"]["chosen"])
    assert np.array_equal(m.sample(schedule="ddpm-linear", steps=100, rule="ddpm")[0], want[0])
    assert (st["seed"], st["batch"], st["spacing"], st["train_steps"]) == (0, 1, "leading", 1000)
    assert st["max_iters"] == 100 and st["eta"] == 1.0
    _, st = m.sample(schedule="ddpm-linear", steps=300, rule="ddim")
    assert (st["window"], st["tol"], st["eta"], st["picard_form"]) == (256, 1e-3, 0.0, "scan")
    assert st["final_tol"] is None
    _, st = m.sample(schedule="ou", steps=20, rule="exp-sde", sampler="blocks")
    # iters: the longest block's length (picardiff::defaults::block_iters), here 3 points.
    assert (st["horizon"], st["t_end"], st["grid"], st["block_len"], st["iters"]) == (10.0, 1e-3, "uniform", 1.0, 3)
    _, st = m.sample(schedule="vp-linear", rule="exp-ode", grid="paper")
    assert st["horizon"] == 1.0 and st["kappa"] == 0.05
    _, st = m.sample(schedule="cosine", steps=200, rule="ddpm", sampler="blocks")
    assert st["block_len"] == 100.0


def test_seed_determines_the_noise():
    m = picardiff.load(MIXTURE_2D)
    kw = dict(schedule="ddpm-linear", steps=40, rule="ddpm", batch=3)
    a, _ = m.sample(seed=5, **kw)
    b, _ = m.sample(seed=5, **kw)
    c, _ = m.sample(seed=6, **kw)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("path", [MIXTURE_2D, MOONS])
@pytest.mark.parametrize("rule", ["ddpm", "ddim"])
@pytest.mark.parametrize("sampler,extra", [("picard", {}), ("picard", {"window": 1}), ("picard", {"picard_form": "drift", "window": 7}), ("blocks", {"iters": 100})])
def test_tol0_reproduces_the_sequential_sampler(path, rule, sampler, extra):
    m = picardiff.load(path)
    kw = dict(steps=60, rule=rule, batch=4, seed=11, tol=0.0, sampler=sampler, **extra)
    if m.kind == "mixture":
        kw["schedule"] = "ddpm-linear"
    par, seq, st = m.compare(**kw)
    assert par.shape == seq.shape == (4, 2)
    if extra.get("picard_form") == "drift" or (m.kind == "mlp" and extra.get("window") != 1):
        # The drift form sums drifts in another order, and the MLP's GEMMs block a window's rows
        # otherwise than one point's: equal to rounding. (Window 1 is bit for bit.)
        np.testing.assert_allclose(par, seq, rtol=0, atol=1e-5)
    else:
        assert np.array_equal(par, seq)
        assert st["max_abs_diff"] == 0.0 and st["deviation_max"] == 0.0
    assert st["sequential_rounds"] == 60 and st["command"] == "compare"


def test_compare_deviation_percentiles():
    m = picardiff.load(MIXTURE_64D)
    par, seq, st = m.compare(schedule="ddpm-linear", steps=100, rule="ddpm", batch=16, seed=2)
    dev = np.abs(par - seq).max(axis=1)
    assert st["max_abs_diff"] == pytest.approx(float(np.abs(par - seq).max()))
    assert st["deviation_p50"] == pytest.approx(float(np.percentile(dev, 50)), rel=1e-6, abs=1e-12)
    assert st["deviation_p90"] == pytest.approx(float(np.percentile(dev, 90)), rel=1e-6, abs=1e-12)
    assert st["deviation_max"] == pytest.approx(float(dev.max()), rel=1e-6)
    assert st["rounds"] < st["sequential_rounds"] == 100


def _cli(cli, tmp_path, command, *args):
    out, stats = tmp_path / "out.npy", tmp_path / "stats.json"
    subprocess.run(
        [cli, command, *map(str, args), "--device", "cpu", "--out", str(out), "--stats", str(stats)],
        check=True, capture_output=True, text=True,
    )
    return np.load(out), json.loads(stats.read_text())


@pytest.mark.parametrize(
    "path,args,kw",
    [
        (MIXTURE_2D, ["--schedule", "ddpm-linear", "--steps", "100", "--rule", "ddpm", "--batch", "6", "--seed", "3",
                      "--sampler", "picard"],
         dict(schedule="ddpm-linear", steps=100, rule="ddpm", batch=6, seed=3, sampler="picard")),
        (MIXTURE_64D, ["--schedule", "cosine", "--steps", "50", "--rule", "ddim", "--window", "16", "--batch", "3",
                       "--sampler", "picard"],
         dict(schedule="cosine", steps=50, rule="ddim", window=16, batch=3, sampler="picard")),
        (MIXTURE_2D, ["--schedule", "ou", "--steps", "64", "--rule", "exp-sde", "--sampler", "blocks", "--batch", "2"],
         dict(schedule="ou", steps=64, rule="exp-sde", sampler="blocks", batch=2)),
        (MOONS, ["--steps", "80", "--rule", "ddpm", "--batch", "4", "--seed", "9", "--spacing", "trailing",
                 "--sampler", "picard"],
         dict(steps=80, rule="ddpm", batch=4, seed=9, spacing="trailing", sampler="picard")),
        (MOONS, ["--steps", "30", "--rule", "ddim", "--sampler", "sequential"],
         dict(steps=30, rule="ddim", sampler="sequential")),
    ],
)
def test_sample_matches_the_cli(cli, tmp_path, path, args, kw):
    # The sampler is named: auto measures in each process and may choose differently in two.
    want, want_stats = _cli(cli, tmp_path, "sample", "--model", path, *args)
    got, stats = picardiff.load(path).sample(**kw)
    assert np.array_equal(got, want)
    # Every setting and counter of the CLI's stats (a key the CLI gains later is not required).
    core = {"sampler", "window", "tol", "schedule", "rule", "steps", "batch", "seed", "dim", "rounds", "nfe", "host_syncs"}
    assert core <= set(stats) & set(want_stats)
    for key in set(stats) & set(want_stats) - {"wall_ms", "device"}:
        assert stats[key] == want_stats[key], key


def test_compare_matches_the_cli(cli, tmp_path):
    args = ["--schedule", "ddpm-linear", "--steps", "200", "--rule", "ddpm", "--batch", "8", "--window", "32"]
    want, want_stats = _cli(cli, tmp_path, "compare", "--model", MIXTURE_64D, *args)
    par, seq, stats = picardiff.load(MIXTURE_64D).compare(schedule="ddpm-linear", steps=200, rule="ddpm", batch=8, window=32)
    assert np.array_equal(par, want)
    for key in ("max_abs_diff", "rounds", "nfe", "sequential_rounds", "sequential_nfe", "window", "tol"):
        assert stats[key] == pytest.approx(want_stats[key]), key


def test_init_and_noise_match_the_cli(cli, tmp_path):
    rng = np.random.default_rng(0)
    steps, batch = 40, 3
    x_t = rng.standard_normal((batch, 2), dtype=np.float32)
    z = rng.standard_normal((steps, batch, 2), dtype=np.float32)
    np.save(tmp_path / "init.npy", x_t)
    np.save(tmp_path / "noise.npy", z)
    want, _ = _cli(cli, tmp_path, "sample", "--model", MOONS, "--steps", steps, "--rule", "ddpm",
                   "--init", tmp_path / "init.npy", "--noise", tmp_path / "noise.npy", "--sampler", "picard")
    got, st = picardiff.load(MOONS).sample(steps=steps, rule="ddpm", init=x_t, noise=z, sampler="picard")
    assert np.array_equal(got, want)
    assert st["batch"] == batch and st["init"] == "array" and st["noise"] == "array"


def test_inputs_replace_the_generated_noise():
    m = picardiff.load(MIXTURE_2D)
    kw = dict(schedule="ddpm-linear", steps=30, rule="ddpm")
    x_t = np.zeros((2, 2), np.float32)
    a, st = m.sample(init=x_t, **kw)
    assert st["batch"] == 2
    b, _ = m.sample(init=x_t, seed=1, **kw)
    assert not np.array_equal(a, b), "step noise still from the seed"
    z = np.zeros((30, 2, 2), np.float32)
    c, _ = m.sample(init=x_t, noise=z, **kw)
    d, _ = m.sample(init=x_t, noise=z, seed=1, **kw)
    assert np.array_equal(c, d) and np.array_equal(c[0], c[1])
    # Read-only and sliced-but-contiguous arrays are fine (read in place).
    big = np.zeros((6, 2), np.float32)
    big.setflags(write=False)
    e, _ = m.sample(init=big[2:4], noise=z, **kw)
    assert np.array_equal(e, c)


def test_ignored_options_warn():
    m = picardiff.load(MIXTURE_2D)
    with pytest.warns(UserWarning, match="eta applies to the ddpm and ddim rules only"):
        m.sample(schedule="ou", steps=10, rule="exp-ode", eta=0.5)
    with pytest.warns(UserWarning, match="window does not apply to the sequential sampler"):
        m.sample(schedule="ddpm-linear", steps=10, rule="ddpm", sampler="sequential", window=4)


def test_the_gil_is_released_while_sampling():
    m = picardiff.load(MIXTURE_64D)
    done = threading.Event()

    def run():
        try:
            m.sample(schedule="ddpm-linear", steps=1000, rule="ddpm", batch=256, sampler="sequential")
        finally:
            done.set()

    t = threading.Thread(target=run)
    start = time.perf_counter()
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    t.join()
    elapsed = time.perf_counter() - start
    # With the GIL held for the whole run this thread could not tick until it ended.
    assert elapsed < 0.05 or ticks > 100, (ticks, elapsed)
