"""picardiff against LeRobot itself: a DiffusionPolicy made and saved with LeRobot, sampled by
LeRobot (`conditional_sample`, `predict_action_chunk`) and by picardiff (`picardiff.lerobot`) from
the same x_T with DDIM; the actions agree within 1e-4, and both latencies are printed.

Skipped unless lerobot and torch import. Runs under pytest, or as a script in a LeRobot
environment without pytest: `python python/tests/test_lerobot.py` (scripts/python-test.sh does so
when $PICARDIFF_LEROBOT_PYTHON, default ~/.cache/picardiff/lerobot-venv/bin/python, has LeRobot).
"""

import statistics
import tempfile
import time

import numpy as np

try:
    import pytest
except ImportError:  # a LeRobot venv without pytest: run as a script
    pytest = None

B, STEPS = 4, 10


def _lerobot():
    try:
        import torch
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return None, f"lerobot/torch not importable ({type(e).__name__}: {e})"
    return (torch, FeatureType, PolicyFeature, DiffusionConfig, DiffusionPolicy), None


LR, WHY = _lerobot()
if pytest is not None:
    pytestmark = pytest.mark.skipif(LR is None, reason=WHY or "")


def make_policy(out_dir):
    """A small state + environment-state policy with DDIM-10, saved and reloaded as users do."""
    torch, FeatureType, PolicyFeature, DiffusionConfig, DiffusionPolicy = LR
    config = DiffusionConfig(
        input_features={
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(6,)),
            "observation.environment_state": PolicyFeature(type=FeatureType.ENV, shape=(4,)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(2,))},
        n_obs_steps=2,
        horizon=16,
        n_action_steps=8,
        down_dims=(32, 64, 128),
        kernel_size=5,
        n_groups=8,
        diffusion_step_embed_dim=64,
        use_film_scale_modulation=True,
        noise_scheduler_type="DDIM",
        num_train_timesteps=100,
        num_inference_steps=STEPS,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        clip_sample_range=1.0,
        prediction_type="epsilon",
        pretrained_backbone_weights=None,
        device="cpu",
        push_to_hub=False,
    )
    torch.manual_seed(0)
    policy = DiffusionPolicy(config)
    with torch.no_grad():  # biases off their zero init, so that none can be ignored
        gen = torch.Generator().manual_seed(1)
        for name, p in policy.named_parameters():
            if name.endswith("bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    policy.save_pretrained(out_dir)
    policy = DiffusionPolicy.from_pretrained(out_dir)
    policy.eval()
    return policy


def median_ms(fn, reps=5):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def check_lerobot_ddim(out_dir):
    import picardiff.lerobot as plr

    torch = LR[0]
    policy = make_policy(out_dir)
    gen = torch.Generator().manual_seed(2)
    batch = {
        "observation.state": torch.randn((B, 2, 6), generator=gen),
        "observation.environment_state": torch.randn((B, 2, 4), generator=gen),
    }
    x_t = torch.randn((B, 16, 2), generator=gen)

    with torch.no_grad():
        gc = policy.diffusion._prepare_global_conditioning(batch)
        want = policy.diffusion.conditional_sample(B, global_cond=gc, noise=x_t.clone()).numpy()
        chunk = policy.predict_action_chunk(batch, noise=x_t.clone()).numpy()

    def rel(a, b):
        return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b).max())

    seq = plr.sample_policy(policy, batch, policy_dir=out_dir, x_T=x_t, sampler="sequential")
    exact = plr.sample_policy(policy, batch, policy_dir=out_dir, x_T=x_t, tol=0.0)
    par, stats = plr.sample_policy(policy, batch, policy_dir=out_dir, x_T=x_t, return_stats=True)
    got_chunk = plr.predict_action_chunk(policy, batch, policy_dir=out_dir, x_T=x_t, sampler="sequential")
    assert seq.shape == want.shape == (B, 16, 2)
    assert rel(seq, want) < 1e-4, rel(seq, want)
    assert rel(exact, want) < 1e-4, rel(exact, want)
    assert got_chunk.shape == chunk.shape and rel(got_chunk, chunk) < 1e-4
    assert stats["sampler"] == "picard" and stats["steps"] == STEPS

    model = plr._model(out_dir)
    gc_np = plr.global_cond(policy, batch)
    x_np = x_t.numpy()
    with torch.no_grad():
        lerobot_ms = median_ms(lambda: policy.diffusion.conditional_sample(B, global_cond=gc, noise=x_t.clone()))
    seq_ms = median_ms(lambda: model.sample(sampler="sequential", cond=gc_np, init=x_np))
    par_ms = median_ms(lambda: model.sample(cond=gc_np, init=x_np))
    print(
        f"\nLeRobot DDIM-{STEPS}, batch {B}, horizon 16 x 2 actions, down_dims (32, 64, 128), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads):\n"
        f"  lerobot conditional_sample     {lerobot_ms:8.2f} ms\n"
        f"  picardiff sequential           {seq_ms:8.2f} ms   max rel diff {rel(seq, want):.1e}\n"
        f"  picardiff picard (defaults)    {par_ms:8.2f} ms   max rel diff {rel(par, want):.1e}, "
        f"{stats['rounds']} rounds"
    )


def test_picardiff_equals_lerobot_ddim(tmp_path):
    check_lerobot_ddim(str(tmp_path / "policy"))


if __name__ == "__main__":
    if LR is None:
        print(f"test_lerobot: 0 passed, 0 failed, 1 skipped: {WHY}")
    else:
        with tempfile.TemporaryDirectory() as d:
            check_lerobot_ddim(d + "/policy")
        print("test_lerobot: 1 passed, 0 failed")
