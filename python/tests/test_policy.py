"""LeRobot Diffusion Policy directories: the fixtures' recorded LeRobot samples (DDIM within 1e-4,
DDPM with LeRobot's own step noise), the picard fixed point, overrides and conditioning checks.

The fixtures (tests/data/lerobot/*/, or $PICARDIFF_LEROBOT_FIXTURES) were recorded with LeRobot by
tools/lerobot_reference.py; these tests skip when there are none. They need no torch."""

import json

import numpy as np
import pytest

import picardiff
import picardiff.lerobot as plr
from conftest import lerobot_fixtures

FIXTURES = lerobot_fixtures()
pytestmark = pytest.mark.skipif(not FIXTURES, reason="no LeRobot fixtures (tests/data/lerobot/*/reference.json)")
IDS = [d.name for d in FIXTURES]


def arr(rec, key):
    return np.ascontiguousarray(np.asarray(rec[key], np.float32).reshape(rec[key + "_shape"]))


def rel_err(got, want):
    return float(np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def scheduler_args(rec):
    """The run's scheduler as sample() arguments: LeRobot's num_inference_steps, scheduler type
    and clip_sample (the tests' equivalent of the CLI's --steps, --rule and --set)."""
    s = rec["scheduler"]
    rule = {"DDIMScheduler": "ddim", "DDPMScheduler": "ddpm"}[s["class"]]
    return dict(steps=s["num_inference_steps"], rule=rule, set={"clip_sample": s["clip_sample"]})


@pytest.fixture(params=FIXTURES, ids=IDS)
def fixture(request):
    d = request.param
    return d, json.loads((d / "reference.json").read_text()), picardiff.load(d)


def test_policy_attributes(fixture):
    d, ref, m = fixture
    assert m.kind == "policy"
    assert (m.horizon, m.action_dim, m.cond_dim) == (ref["horizon"], ref["action_dim"], ref["global_cond_dim"])
    assert m.dim == ref["horizon"] * ref["action_dim"]
    assert picardiff.info(d) == m.summary() and "LeRobot Diffusion Policy" in m.summary()


@pytest.mark.parametrize("key", ["ddim", "ddim_noclip"])
def test_ddim_matches_lerobot(fixture, key):
    _, ref, m = fixture
    if key not in ref:
        pytest.skip(f"no {key} reference")
    rec = ref[key]
    x_t, gc, want = arr(rec, "x_T"), arr(rec, "global_cond"), arr(rec, "out")
    seq, st = m.sample(sampler="sequential", init=x_t, cond=gc, **scheduler_args(rec))
    assert seq.shape == tuple(rec["out_shape"]) == (rec["batch"], m.horizon, m.action_dim)
    assert rel_err(seq, want) < 1e-4, rel_err(seq, want)
    assert st["scheduler"] == "Ddim" and st["steps"] == rec["scheduler"]["num_inference_steps"]
    # Picard at τ = 0 is the sequential sampler bit for bit; at its default τ close to it.
    par, seq2, cst = m.compare(init=x_t, cond=gc, window=1, tol=0.0, **scheduler_args(rec))
    assert np.array_equal(par, seq) and np.array_equal(seq2, seq) and cst["max_abs_diff"] == 0.0
    par, _ = m.sample(init=x_t, cond=gc, **scheduler_args(rec))
    assert rel_err(par, want) < 1e-2
    # The flat [batch, horizon * action_dim] x_T is the same input.
    flat, _ = m.sample(sampler="sequential", init=x_t.reshape(len(x_t), -1), cond=gc, **scheduler_args(rec))
    assert np.array_equal(flat, seq)


def test_ddpm_with_lerobots_noise_matches(fixture):
    _, ref, m = fixture
    rec = ref["ddpm"]
    x_t, gc, z, want = arr(rec, "x_T"), arr(rec, "global_cond"), arr(rec, "noise"), arr(rec, "out")
    got, st = m.sample(sampler="sequential", init=x_t, cond=gc, noise=z, **scheduler_args(rec))
    assert rel_err(got, want) < 1e-3, rel_err(got, want)
    assert st["scheduler"] == "Ddpm"


def test_sample_actions_wrapper(fixture):
    d, ref, m = fixture
    rec = ref["ddim"]
    x_t, gc = arr(rec, "x_T"), arr(rec, "global_cond")
    kw = scheduler_args(rec)
    want, _ = m.sample(sampler="picard", init=x_t, cond=gc, **kw)  # the wrapper's default
    got = plr.sample_actions(d, gc.astype(np.float64), x_t.tolist(), **kw)  # converted explicitly
    assert np.array_equal(got, want)
    got, st = plr.sample_actions(m, gc, x_t, "sequential", return_stats=True, **kw)
    assert st["sampler"] == "sequential" and got.shape == want.shape


def test_steps_and_rule_override_the_scheduler(fixture):
    _, ref, m = fixture
    gc = arr(ref["ddim"], "global_cond")
    _, st = m.sample(cond=gc, steps=5, rule="ddim")
    assert (st["steps"], st["scheduler"], st["eta"], st["tol"]) == (5, "Ddim", 0.0, 0.0)
    assert st["final_tol"] == 1e-3  # the window holds every step: the final-sample stop
    _, st = m.sample(cond=gc, steps=7, rule="ddpm", sampler="sequential")
    assert (st["steps"], st["scheduler"], st["eta"]) == (7, "Ddpm", 1.0)
    # Without overrides: the checkpoint's scheduler (all training steps unless it names fewer).
    _, st = m.sample(cond=gc, sampler="sequential")
    assert st["steps"] >= 1 and st["spacing"] == "leading"


def test_policy_argument_errors(fixture):
    _, ref, m = fixture
    gc = arr(ref["ddim"], "global_cond")
    b, g = gc.shape
    with pytest.raises(ValueError, match=rf"cond: required for a Diffusion Policy: a float32 array of shape \[batch, {g}\]"):
        m.sample()
    with pytest.raises(ValueError, match=rf"cond: expected a float32 array of shape \[batch, {g}\]"):
        m.sample(cond=np.zeros((b, g + 1), np.float32))
    with pytest.raises(ValueError, match="the batch comes from cond"):
        m.sample(cond=gc, batch=b + 1)
    with pytest.raises(ValueError, match="rule: a Diffusion Policy samples with its scheduler"):
        m.sample(cond=gc, rule="exp-sde")
    with pytest.raises(ValueError, match="schedule: a Diffusion Policy names its own schedule"):
        m.sample(cond=gc, schedule="cosine")
    with pytest.raises(ValueError, match="num_inference_steps 100000"):
        m.sample(cond=gc, steps=100000)
    with pytest.raises(ValueError, match="set: config.json: no_such_field"):
        m.sample(cond=gc, set={"no_such_field": 1})
    with pytest.raises(ValueError, match=r"init: expected a float32 array of shape"):
        m.sample(cond=gc, init=np.zeros((b, 1), np.float32))
    if not picardiff.cuda_available:  # with CUDA a policy samples there (tests/gpu_lerobot.rs)
        with pytest.raises(picardiff.PicardiffError):
            m.sample(cond=gc, device="cuda")
