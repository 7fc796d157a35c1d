"""Sampling LeRobot Diffusion Policies with picardiff.

Nothing here imports lerobot or torch at import time: ``sample_actions`` needs numpy only, and the
helpers that take a LeRobot ``DiffusionPolicy`` object use it duck-typed (torch is imported only
when they run).

picardiff reads the policy directory that ``DiffusionPolicy.save_pretrained`` wrote (config.json +
model.safetensors) and runs its U-Net natively on the CPU with the checkpoint's own scheduler. It
does not run the image encoder: the observation features (``global_cond``, what LeRobot's
``DiffusionModel._prepare_global_conditioning`` returns) come from LeRobot, once per action chunk.

>>> from picardiff.lerobot import sample_actions                      # doctest: +SKIP
>>> actions = sample_actions("outputs/pusht_policy", global_cond)     # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from . import Model, load

__all__ = ["sample_actions", "global_cond", "sample_policy", "predict_action_chunk"]

_models: dict[tuple[str, int], Model] = {}


def _model(policy_dir_or_model: str | os.PathLike[str] | Model) -> Model:
    """The loaded policy: a Model as it is, a directory loaded once (cached by path and mtime)."""
    if isinstance(policy_dir_or_model, Model):
        return policy_dir_or_model
    path = os.path.abspath(os.fspath(policy_dir_or_model))
    stamp = os.stat(os.path.join(path, "model.safetensors")).st_mtime_ns if os.path.isdir(path) else 0
    key = (path, stamp)
    model = _models.get(key)
    if model is None:
        model = load(path)
        _models.clear()  # keep only the latest: a policy's weights can be large
        _models[key] = model
    if model.kind != "policy":
        raise ValueError(f"{path}: a {model.kind} model, not a LeRobot Diffusion Policy directory")
    return model


def _as_f32(x: Any, what: str) -> np.ndarray | None:
    """A tensor or array as a float32 C-contiguous numpy array (an explicit conversion: it copies
    only when the input is not already one)."""
    if x is None:
        return None
    if hasattr(x, "detach"):  # a torch.Tensor
        x = x.detach().to("cpu").float().contiguous().numpy()
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim == 0:
        raise ValueError(f"{what}: expected an array, got a scalar")
    return arr


def sample_actions(
    policy_dir_or_model: str | os.PathLike[str] | Model,
    global_cond: Any,
    x_T: Any = None,
    sampler: str = "picard",
    *,
    return_stats: bool = False,
    **kw: Any,
) -> Any:
    """Action chunks ``[batch, horizon, action_dim]`` for the conditioning ``global_cond``
    ``[batch, global_cond_dim]``: what LeRobot's ``DiffusionModel.conditional_sample(batch,
    global_cond=..., noise=x_T)`` returns (normalised actions), computed by picardiff.

    ``policy_dir_or_model``: the directory ``save_pretrained`` wrote, or ``picardiff.load(dir)``.
    ``x_T``: the initial noise ``[batch, horizon, action_dim]`` (default: picardiff's seeded
    Philox noise, ``seed=`` in ``kw``). ``sampler``: "picard" (default), "sequential" or "blocks".
    ``kw``: any other ``Model.sample`` argument (``steps=10, rule="ddim"`` override the
    checkpoint's scheduler as LeRobot's ``num_inference_steps``/``noise_scheduler_type`` do).
    Tensors and other dtypes are converted to float32 numpy arrays here (explicitly).
    Returns the actions, or ``(actions, stats)`` with ``return_stats=True``.
    """
    model = _model(policy_dir_or_model)
    cond = _as_f32(global_cond, "global_cond")
    init = _as_f32(x_T, "x_T")
    actions, stats = model.sample(sampler=sampler, cond=cond, init=init, **kw)
    return (actions, stats) if return_stats else actions


def global_cond(policy: Any, batch: Mapping[str, Any]) -> np.ndarray:
    """``policy.diffusion._prepare_global_conditioning(batch)`` as a float32 numpy array.

    ``policy``: a LeRobot ``DiffusionPolicy`` (duck-typed). ``batch``: the (already normalised,
    as LeRobot's preprocessor leaves it) observation batch that ``predict_action_chunk`` takes,
    ``observation.state`` of shape ``[B, n_obs_steps, state_dim]``, images per camera key; the
    cameras are stacked into ``observation.images`` here as ``predict_action_chunk`` does.
    """
    import torch  # only here: the module itself needs no torch

    batch = dict(batch)
    image_keys = list(getattr(policy.config, "image_features", None) or [])
    if image_keys and "observation.images" not in batch:
        for key in image_keys:
            if batch[key].ndim == 4:
                batch[key] = batch[key].unsqueeze(1)
        batch["observation.images"] = torch.stack([batch[k] for k in image_keys], dim=-4)
    with torch.no_grad():
        gc = policy.diffusion._prepare_global_conditioning(batch)
    return _as_f32(gc, "global_cond")


def _policy_dir(policy: Any, policy_dir: str | os.PathLike[str] | None) -> str:
    if policy_dir is not None:
        return os.fspath(policy_dir)
    for cand in (getattr(policy.config, "pretrained_path", None), getattr(policy, "name_or_path", None)):
        if cand and os.path.isdir(os.fspath(cand)):
            return os.fspath(cand)
    raise ValueError(
        "policy_dir: the directory the policy was saved to (save_pretrained) is required; "
        "it is not recorded on the policy object"
    )


def sample_policy(
    policy: Any,
    batch: Mapping[str, Any],
    *,
    policy_dir: str | os.PathLike[str] | None = None,
    x_T: Any = None,
    sampler: str = "picard",
    return_stats: bool = False,
    **kw: Any,
) -> Any:
    """LeRobot's ``conditional_sample`` for a loaded ``DiffusionPolicy`` and an observation batch,
    sampled by picardiff: ``global_cond`` from the policy's own
    ``diffusion._prepare_global_conditioning(batch)`` (see :func:`global_cond`), then
    :func:`sample_actions` on the directory the policy was saved to (``policy_dir``; default the
    policy's ``config.pretrained_path`` or ``name_or_path`` when that is a directory). The policy's
    in-memory scheduler settings are not read: pass ``steps=``/``rule=`` to override the saved
    config's. Returns ``[B, horizon, action_dim]`` normalised actions (numpy).
    """
    gc = global_cond(policy, batch)
    return sample_actions(
        _policy_dir(policy, policy_dir), gc, x_T, sampler, return_stats=return_stats, **kw
    )


def predict_action_chunk(policy: Any, batch: Mapping[str, Any], **kw: Any) -> np.ndarray:
    """:func:`sample_policy` cut as LeRobot's ``generate_actions`` cuts it: the ``n_action_steps``
    actions from the current observation, ``[B, n_action_steps, action_dim]``."""
    kw.pop("return_stats", None)
    actions = sample_policy(policy, batch, **kw)
    start = int(policy.config.n_obs_steps) - 1
    return actions[:, start : start + int(policy.config.n_action_steps)]
