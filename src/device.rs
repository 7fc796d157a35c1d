//! The one dispatch over (backend × model kind): [`Device`] is an opened backend, [`ModelRef`] a
//! model of one of the library's kinds, and [`Device::run`] runs any model that every built
//! backend can evaluate. The CLI, the C ABI and Python run through here; a front end's own model
//! (a C or Python callback) calls [`Device::run`] with it directly.

use crate::backend::cpu::CpuBackend;
#[cfg(feature = "cuda")]
use crate::backend::cuda::CudaBackend;
use crate::backend::Backend as _;
use crate::error::{Error, Result};
use crate::model::{DiffusionPolicy, GmmModel, MlpModel, ScoreModel};
use crate::sampler::auto::{choose, Choice};
use crate::sampler::{run, RunInputs, RunOutput, SamplerKind};
use crate::schedule::{Grid, StepRule};
use crate::spec::DeviceName;

/// An opened backend.
pub enum Device {
    /// The pure-Rust CPU backend.
    Cpu(CpuBackend),
    /// The CUDA backend (feature `cuda`).
    #[cfg(feature = "cuda")]
    Cuda(CudaBackend),
}

/// What a build without the `cuda` feature says when asked for CUDA.
pub const NO_CUDA: &str = "built without CUDA support (the `cuda` feature)";

/// A model every built backend can evaluate (the bound [`Device::run`] needs).
#[cfg(feature = "cuda")]
pub trait DeviceModel: ScoreModel<CpuBackend> + ScoreModel<CudaBackend> {}
#[cfg(feature = "cuda")]
impl<M: ScoreModel<CpuBackend> + ScoreModel<CudaBackend>> DeviceModel for M {}
/// A model every built backend can evaluate (the bound [`Device::run`] needs).
#[cfg(not(feature = "cuda"))]
pub trait DeviceModel: ScoreModel<CpuBackend> {}
#[cfg(not(feature = "cuda"))]
impl<M: ScoreModel<CpuBackend>> DeviceModel for M {}

impl Device {
    /// Opens `name` on GPU `ordinal` for CUDA. `Auto` prefers CUDA when built with it and the
    /// GPU opens; the second value says why it fell back to the CPU, if it did.
    pub fn open(name: DeviceName, ordinal: usize) -> Result<(Device, Option<String>)> {
        match name {
            DeviceName::Cpu => Ok((Device::Cpu(CpuBackend), None)),
            DeviceName::Cuda => Ok((Self::open_cuda(ordinal)?, None)),
            DeviceName::Auto => Ok(match Self::open_cuda(ordinal) {
                Ok(d) => (d, None),
                Err(e) => (Device::Cpu(CpuBackend), Some(e.to_string())),
            }),
        }
    }

    #[cfg(feature = "cuda")]
    fn open_cuda(ordinal: usize) -> Result<Device> {
        CudaBackend::new(ordinal).map(Device::Cuda)
    }

    #[cfg(not(feature = "cuda"))]
    fn open_cuda(_ordinal: usize) -> Result<Device> {
        Err(Error::device("open", NO_CUDA))
    }

    /// The backend's name (`cpu`, `cuda`).
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => b.name(),
        }
    }

    /// Whether this device records Picard iterations into graphs (CUDA).
    pub fn has_graphs(&self) -> bool {
        !matches!(self, Device::Cpu(_))
    }

    /// Turns CUDA graphs on or off (a no-op on the CPU).
    pub fn set_graphs(&self, on: bool) {
        #[cfg(feature = "cuda")]
        if let Device::Cuda(b) = self {
            b.set_graphs(on);
        }
        let _ = on;
    }

    /// Runs `kind` with `model` on this backend ([`crate::sampler::run`]).
    pub fn run<M: DeviceModel>(
        &self,
        model: &M,
        grid: &Grid,
        rule: StepRule,
        kind: &SamplerKind,
        inputs: &RunInputs<'_>,
    ) -> Result<RunOutput> {
        match self {
            Device::Cpu(b) => run(b, model, grid, rule, kind, inputs),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => run(b, model, grid, rule, kind, inputs),
        }
    }

    /// Auto's choice between the sequential sampler and `picard` for `model` on this backend
    /// ([`crate::sampler::auto::choose`]).
    pub fn choose<M: DeviceModel>(
        &self,
        model: &M,
        grid: &Grid,
        rule: StepRule,
        picard: &SamplerKind,
        inputs: &RunInputs<'_>,
    ) -> Result<Choice> {
        match self {
            Device::Cpu(b) => choose(b, model, grid, rule, picard, inputs),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => choose(b, model, grid, rule, picard, inputs),
        }
    }

    /// Runs `kind` with a model that only the CPU backend evaluates (a Python callback); an
    /// error naming `what` on any other device.
    pub fn run_cpu_only<M: ScoreModel<CpuBackend>>(
        &self,
        what: &str,
        model: &M,
        grid: &Grid,
        rule: StepRule,
        kind: &SamplerKind,
        inputs: &RunInputs<'_>,
    ) -> Result<RunOutput> {
        match self {
            Device::Cpu(b) => {
                let _ = what;
                run(b, model, grid, rule, kind, inputs)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(_) => Err(Error::device(
                "run",
                format!("{what} run on the CPU backend only for now: use the cpu device"),
            )),
        }
    }
}

/// A model of one of the library's kinds, borrowed.
#[derive(Clone, Copy)]
pub enum ModelRef<'a> {
    /// The exact mixture score under its schedule.
    Gmm(&'a GmmModel),
    /// A trained MLP.
    Mlp(&'a MlpModel),
    /// A LeRobot Diffusion Policy.
    Policy(&'a DiffusionPolicy),
}

impl ModelRef<'_> {
    /// Runs `kind` with this model on `device`: the one match over model kinds.
    pub fn run(
        self,
        device: &Device,
        grid: &Grid,
        rule: StepRule,
        kind: &SamplerKind,
        inputs: &RunInputs<'_>,
    ) -> Result<RunOutput> {
        match self {
            ModelRef::Gmm(m) => device.run(m, grid, rule, kind, inputs),
            ModelRef::Mlp(m) => device.run(m, grid, rule, kind, inputs),
            ModelRef::Policy(m) => device.run(m, grid, rule, kind, inputs),
        }
    }

    /// Auto's choice for this model on `device` ([`Device::choose`]).
    pub fn choose(
        self,
        device: &Device,
        grid: &Grid,
        rule: StepRule,
        picard: &SamplerKind,
        inputs: &RunInputs<'_>,
    ) -> Result<Choice> {
        match self {
            ModelRef::Gmm(m) => device.choose(m, grid, rule, picard, inputs),
            ModelRef::Mlp(m) => device.choose(m, grid, rule, picard, inputs),
            ModelRef::Policy(m) => device.choose(m, grid, rule, picard, inputs),
        }
    }

    /// Elements per sample.
    pub fn dim(self) -> usize {
        match self {
            ModelRef::Gmm(m) => ScoreModel::<CpuBackend>::dim(m),
            ModelRef::Mlp(m) => ScoreModel::<CpuBackend>::dim(m),
            ModelRef::Policy(m) => ScoreModel::<CpuBackend>::dim(m),
        }
    }

    /// Width of the per-sample conditioning (0: none).
    pub fn cond_dim(self) -> usize {
        match self {
            ModelRef::Gmm(m) => ScoreModel::<CpuBackend>::cond_dim(m),
            ModelRef::Mlp(m) => ScoreModel::<CpuBackend>::cond_dim(m),
            ModelRef::Policy(m) => ScoreModel::<CpuBackend>::cond_dim(m),
        }
    }
}
