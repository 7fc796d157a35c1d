"""picardiff: parallel-in-time diffusion sampling with Picard iterations, at native speed.

A diffusion sampler is a chain of N dependent steps, each a call of a score network. Picard
iteration refines a whole window of steps per batched model call until it reproduces the
sequential result, so far fewer sequential model calls ("rounds") are needed.

>>> import picardiff
>>> m = picardiff.load("examples/mixture_2d.json")                       # doctest: +SKIP
>>> x, stats = m.sample(schedule="ddpm-linear", steps=100, rule="ddpm", batch=4)  # doctest: +SKIP

``load`` reads every model the CLI's ``--model`` accepts (mixture JSON, MLP ``.safetensors``,
LeRobot Diffusion Policy directory); ``callback_model`` wraps any Python function (a PyTorch
network, say) so that the Picard engine drives it. ``Model.sample`` and ``Model.compare`` take the
CLI's options as keyword arguments, with its defaults. ``picardiff.lerobot`` samples LeRobot
policies. Bad arguments raise ``ValueError``, unreadable files ``OSError``, failed runs
``PicardiffError``.

Input arrays must be ``float32`` and C-contiguous numpy arrays: they are read in place, never
copied or converted (anything else raises ``ValueError`` naming the fix).
"""

from ._picardiff import (
    DEFAULT_WINDOW,
    Model,
    PicardiffError,
    __version__,
    callback_model,
    cuda_available,
    info,
    load,
)

__all__ = [
    "DEFAULT_WINDOW",
    "Model",
    "PicardiffError",
    "__version__",
    "callback_model",
    "cuda_available",
    "info",
    "load",
]
