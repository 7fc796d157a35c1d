"""Type stubs of picardiff (the native module ``picardiff._picardiff``)."""

import os
import pathlib
from typing import Any, Callable, Literal, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
#: ``window`` when not given: 256, at most the steps (the CLI's default).
DEFAULT_WINDOW: int
#: True when the module was built with the ``cuda`` feature.
cuda_available: bool

_Path = Union[str, "os.PathLike[str]"]
_F32 = npt.NDArray[np.float32]

class PicardiffError(Exception):
    """A run or model failed: not converged (raise ``max_iters`` or ``tol``), a non-finite value,
    a device error, a malformed model file, or an internal error (a caught Rust panic). Bad
    arguments raise ``ValueError`` and unreadable files ``OSError`` instead."""

def load(path: _Path) -> "Model":
    """Loads what the CLI's ``--model`` accepts: a Gaussian mixture JSON
    (``{"weights": [...], "means": [[...], ...], "stds": [...]}``), a trained MLP
    ``.safetensors`` file, or a LeRobot Diffusion Policy directory (config.json +
    model.safetensors as ``save_pretrained`` writes them).

    Raises FileNotFoundError / OSError (unreadable), PicardiffError (malformed)."""

def info(path: _Path) -> str:
    """The text of ``picardiff info PATH``: the model's architecture and parameter count."""

def callback_model(
    fn: Callable[[_F32, _F32], Any],
    dim: int,
    output: Literal["epsilon", "score", "sample", "x0", "v", "v_prediction"] = "epsilon",
    *,
    schedule: Literal["ddpm-linear", "scaled-linear", "cosine", "ou", "vp-linear"],
    train_steps: Optional[int] = None,
) -> "Model":
    """A model evaluated by a Python function, so that any network (a PyTorch module, say) runs
    under picardiff's samplers.

    ``fn(x, t)`` gets ``x``: float32 ``[rows, dim]`` and ``t``: float32 ``[rows]`` (the model time
    of each row: a timestep index for the discrete schedules, t for the continuous ones; rows are
    the batch times the Picard window's points) and returns ``[rows, dim]`` float32 (a numpy array,
    or anything ``np.asarray`` turns into one without a dtype change, such as a CPU tensor) with
    the prediction named by ``output``. A result of another shape or dtype raises ValueError; an
    exception in ``fn`` stops the run and is re-raised as it is, with its traceback. ``x`` and
    ``t`` are fresh arrays for each call.

    ``schedule`` is the noise schedule the network was trained with (like an MLP file's), with
    ``train_steps`` training steps (default 1000) for the discrete ones. Callback models run on
    the CPU; the GIL is held only while ``fn`` runs."""

class Model:
    """A loaded model. Immutable; ``sample`` may be called from several threads at once."""

    @property
    def dim(self) -> int:
        """Elements per sample (a policy's horizon × action_dim)."""
    @property
    def kind(self) -> Literal["mixture", "mlp", "policy", "callback"]: ...
    @property
    def cond_dim(self) -> int:
        """Width of ``cond`` (a policy's global_cond_dim); 0 when the model takes none."""
    @property
    def horizon(self) -> Optional[int]:
        """A policy's action horizon T; None for other models."""
    @property
    def action_dim(self) -> Optional[int]:
        """A policy's action dimension A; None for other models."""
    @property
    def schedule(self) -> Optional[str]:
        """The schedule the model names (MLP, callback, policy); None for a mixture."""
    @property
    def output(self) -> Literal["epsilon", "score", "sample", "v"]:
        """What the network predicts."""
    @property
    def path(self) -> Optional[pathlib.Path]:
        """The file or directory it was loaded from; None for a callback model."""
    def summary(self) -> str:
        """``picardiff info``'s text."""
    def sample(
        self,
        *,
        sampler: Literal["auto", "picard", "sequential", "blocks"] = "auto",
        steps: Optional[int] = None,
        rule: Optional[
            Literal["ddpm", "ddim", "exp-sde", "exp-ode", "euler", "dpmpp-2m", "dpmpp-3m"]
        ] = None,
        eta: Optional[float] = None,
        schedule: Optional[str] = None,
        train_steps: Optional[int] = None,
        spacing: Optional[Literal["leading", "trailing", "linspace", "dpm-linspace"]] = None,
        horizon: Optional[float] = None,
        t_end: Optional[float] = None,
        grid: Optional[Literal["uniform", "paper", "diffusers"]] = None,
        kappa: Optional[float] = None,
        tol: Optional[float] = None,
        window: Optional[int] = None,
        picard_form: Optional[Literal["scan", "drift"]] = None,
        anderson: Optional[int] = None,
        final_tol: Optional[float] = None,
        max_iters: Optional[int] = None,
        block_len: Optional[float] = None,
        iters: Optional[int] = None,
        corrector: bool = False,
        corrector_gamma: Optional[float] = None,
        corrector_time: Optional[float] = None,
        corrector_steps: Optional[int] = None,
        corrector_iters: Optional[int] = None,
        batch: Optional[int] = None,
        seed: int = 0,
        device: Literal["cpu", "cuda", "auto"] = "auto",
        sample0: int = 0,
        dtype: Optional[Literal["f32", "bf16", "f16"]] = None,
        shift: Optional[float] = None,
        mu: Optional[float] = None,
        init: Optional[_F32] = None,
        noise: Optional[_F32] = None,
        cond: Optional[_F32] = None,
        set: Optional[Mapping[str, Any]] = None,
    ) -> Tuple[_F32, dict]:
        """Runs one sampler; returns ``(samples, stats)``.

        The keyword arguments but the arrays and ``set`` are the fields of picardiff's run
        specification (``picardiff::spec::RunSpec``), the same as ``picardiff sample``'s options
        in snake_case, with the same defaults and checks; an unknown keyword is a TypeError.

        - ``rule``: ddpm (= ddim with eta 1), ddim (eta 0 unless ``eta``), exp-sde, exp-ode,
          dpmpp-2m, dpmpp-3m (DPM-Solver++ multistep); euler on flow.
          Required, except for a policy, whose scheduler gives it (ddpm/ddim override it).
        - ``steps``: sampling steps; required except with ``grid="paper"`` (and for a policy,
          where it overrides the checkpoint's ``num_inference_steps``).
        - ``schedule``: ddpm-linear, scaled-linear, cosine (discrete), ou, vp-linear
          (continuous) or flow (rectified flow, with ``rule="euler"``; ``grid`` "diffusers"
          with ``shift``/``mu``, or "uniform"). Required for a mixture; an MLP or callback
          model names its own.
        - ``train_steps`` (default 1000, or the model's), ``spacing`` (default "leading"):
          discrete schedules. ``horizon`` (10 for ou, 1 for vp-linear), ``t_end`` (1e-3),
          ``grid`` ("uniform"), ``kappa`` (0.05): continuous schedules.
        - ``sampler``: "auto" (default: sequential or picard, whichever a cost model measured on
          this model, device and batch says is faster; ``stats["auto"]["chosen"]`` says which
          ran, beside the estimate; a callback model runs picard), "picard" (sliding
          window), "sequential", "blocks" (PIADM).
        - ``window``: Picard window (default 256, at most ``steps``); ``tol``: tolerance of
          ParaDiGMS' per-step test (default: 0 with the final-sample stop when the window holds
          every step; otherwise 0.1 for stochastic rules, 1e-3 for deterministic ones; 0 with
          "scan" reproduces the sequential sampler exactly); ``max_iters`` (default ``steps``;
          reaching it raises PicardiffError); ``picard_form``: "scan" or "drift" (default drift
          with the final-sample stop, else scan); ``anderson``: Anderson acceleration with this
          history, 2 to 5 (picard, blocks; CPU only; default off); ``final_tol``: also stop once
          the last point's RMS change per element in one iteration is at most this for every
          sample, in the samples' units (picard, blocks; default 1e-3 for picard when ``tol`` is
          not given and the window holds every step, else off; ``stats["final_change"]`` and
          ``stats["final_stopped"]`` say how the run ended).
        - ``block_len`` (100 timesteps discrete, 1 continuous), ``iters`` (the longest block's
          length, which always suffices), ``corrector`` and
          ``corrector_*``: the blocks sampler.
        - ``batch``: samples (default: ``init.shape[0]``, else ``noise.shape[1]``, else 1; for a
          policy the batch comes from ``cond``). ``seed``: Philox seed of the generated noise.
        - ``device``: "auto" (default: CUDA when built with it and a GPU opens, else the CPU),
          "cpu" or "cuda" (a ``--features cuda`` build; mixtures and MLPs). ``dtype``: an MLP's
          GEMM dtype on the GPU. ``sample0``: global index of the first sample (batch split).
        - ``init``: x_T ``[batch, dim]`` (policy: also ``[batch, horizon, action_dim]``);
          ``noise``: step noise ``[steps, batch, dim]`` (policy: ``[steps, batch, horizon,
          action_dim]``); ``cond``: a policy's global conditioning ``[batch, global_cond_dim]``
          (required for a policy). All float32 C-contiguous numpy arrays, read in place (never
          copied); any other dtype or layout raises ValueError (convert with
          ``np.ascontiguousarray(x, dtype=np.float32)``). Do not modify them during the call.
        - ``set``: a policy's config.json overrides (the CLI's ``--set``), e.g.
          ``{"clip_sample": False}``; the directory is read again with them.

        ``samples``: float32 ``[batch, dim]``, or ``[batch, horizon, action_dim]`` for a policy
        (as the CLI's ``--out``). ``stats``: the CLI's ``--stats`` JSON as a dict (``rounds``,
        ``nfe``, ``wall_ms``, ``host_syncs``, the effective settings).

        Options that do not apply are ignored with a UserWarning, as the CLI warns. The GIL is
        released while the sampler runs. Raises ValueError (bad arguments or arrays), OSError
        (files), PicardiffError (not converged, non-finite, device), or a callback's exception."""
    def compare(
        self,
        *,
        sampler: Literal["auto", "picard", "blocks"] = "auto",
        steps: Optional[int] = None,
        rule: Optional[
            Literal["ddpm", "ddim", "exp-sde", "exp-ode", "euler", "dpmpp-2m", "dpmpp-3m"]
        ] = None,
        eta: Optional[float] = None,
        schedule: Optional[str] = None,
        train_steps: Optional[int] = None,
        spacing: Optional[Literal["leading", "trailing", "linspace", "dpm-linspace"]] = None,
        horizon: Optional[float] = None,
        t_end: Optional[float] = None,
        grid: Optional[Literal["uniform", "paper", "diffusers"]] = None,
        kappa: Optional[float] = None,
        tol: Optional[float] = None,
        window: Optional[int] = None,
        picard_form: Optional[Literal["scan", "drift"]] = None,
        anderson: Optional[int] = None,
        final_tol: Optional[float] = None,
        max_iters: Optional[int] = None,
        block_len: Optional[float] = None,
        iters: Optional[int] = None,
        corrector: bool = False,
        corrector_gamma: Optional[float] = None,
        corrector_time: Optional[float] = None,
        corrector_steps: Optional[int] = None,
        corrector_iters: Optional[int] = None,
        batch: Optional[int] = None,
        seed: int = 0,
        device: Literal["cpu", "cuda", "auto"] = "auto",
        sample0: int = 0,
        dtype: Optional[Literal["f32", "bf16", "f16"]] = None,
        shift: Optional[float] = None,
        mu: Optional[float] = None,
        init: Optional[_F32] = None,
        noise: Optional[_F32] = None,
        cond: Optional[_F32] = None,
        set: Optional[Mapping[str, Any]] = None,
    ) -> Tuple[_F32, _F32, dict]:
        """``picardiff compare``: the sequential sampler and ``sampler`` on the same noise
        (``auto`` compares picard).

        Same arguments as :meth:`sample`. Returns ``(samples, sequential_samples, stats)``:
        ``stats`` is the parallel run's (as :meth:`sample`'s) plus ``max_abs_diff``,
        ``sequential_rounds``, ``sequential_nfe``, ``sequential_wall_ms``,
        ``sequential_host_syncs`` and the per-sample deviations ``max_i |x_i - x_seq_i|``:
        ``deviation_p50``, ``deviation_p90``, ``deviation_max``."""
