//! Backend selection (`--device cpu|cuda|auto`) and the one generic function that runs a sampler on
//! any backend. A backend plugs in as a variant of [`Device`] plus one match arm per method.

use std::io::IsTerminal;
use std::time::Instant;

use picardiff::backend::Backend;
use picardiff::prelude::*;
use picardiff::spec::DeviceName;

use super::config::{CliModel, Problem};
use super::{CliError, CliResult};

/// An opened backend.
pub enum Device {
    /// The pure-Rust CPU backend.
    Cpu(CpuBackend),
    /// The CUDA backend on GPU 0.
    #[cfg(feature = "cuda")]
    Cuda(picardiff::backend::cuda::CudaBackend),
}

#[cfg(not(feature = "cuda"))]
const NO_CUDA: &str = "built without CUDA support: rebuild with --features cuda";

impl Device {
    /// Opens the backend named by `--device`. `auto` prefers CUDA when built with it and a GPU
    /// opens, and says on stderr which device it chose.
    pub fn open(name: DeviceName) -> CliResult<Device> {
        match name {
            DeviceName::Cpu => Ok(Device::Cpu(CpuBackend)),
            DeviceName::Cuda => Self::open_cuda(),
            DeviceName::Auto => {
                let (device, why) = Self::open_auto();
                eprintln!("picardiff: device {} (auto{why})", device.name());
                Ok(device)
            }
        }
    }

    #[cfg(feature = "cuda")]
    fn open_cuda() -> CliResult<Device> {
        picardiff::backend::cuda::CudaBackend::new(0)
            .map(Device::Cuda)
            .map_err(|e| CliError::new(format!("cannot open CUDA device 0: {e}")))
    }

    #[cfg(not(feature = "cuda"))]
    fn open_cuda() -> CliResult<Device> {
        Err(CliError::new(NO_CUDA))
    }

    /// The device `auto` picks and why.
    #[cfg(feature = "cuda")]
    fn open_auto() -> (Device, String) {
        match picardiff::backend::cuda::CudaBackend::new(0) {
            Ok(b) => (Device::Cuda(b), String::new()),
            Err(e) => (
                Device::Cpu(CpuBackend),
                format!("; CUDA device 0 unavailable: {e}"),
            ),
        }
    }

    /// The device `auto` picks and why.
    #[cfg(not(feature = "cuda"))]
    fn open_auto() -> (Device, String) {
        // Not a problem to report: a CPU-only build simply has no other device.
        (
            Device::Cpu(CpuBackend),
            "; this build has no CUDA backend".to_string(),
        )
    }

    /// The backend's name (`cpu`, `cuda`).
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu(b) => b.name(),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => b.name(),
        }
    }

    /// Whether this device records Picard iterations into graphs (CUDA) at all.
    pub fn has_graphs(&self) -> bool {
        !matches!(self, Device::Cpu(_))
    }

    /// Turns CUDA graphs on or off (a no-op on the CPU).
    pub fn set_graphs(&self, on: bool) {
        match self {
            Device::Cpu(_) => {}
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => b.set_graphs(on),
        }
        let _ = on;
    }

    /// Runs `kind` on `problem`; prints a line when a long run ends and stderr is a terminal.
    pub fn run(&self, problem: &Problem, kind: &SamplerKind, label: &str) -> CliResult<RunOutput> {
        let start = Instant::now();
        let out = match self {
            Device::Cpu(_) => run_on_cpu(problem, kind),
            #[cfg(feature = "cuda")]
            Device::Cuda(b) => run_on(b, problem, kind),
        }?;
        let secs = start.elapsed().as_secs_f64();
        if secs >= 1.0 && std::io::stderr().is_terminal() {
            eprintln!(
                "picardiff: {label} finished in {secs:.1} s ({} rounds)",
                out.stats.rounds
            );
        }
        Ok(out)
    }
}

/// Runs `kind` on the CPU, for either model.
fn run_on_cpu(problem: &Problem, kind: &SamplerKind) -> picardiff::Result<RunOutput> {
    let (g, inputs) = (&problem.grid, problem.inputs());
    match &problem.model {
        CliModel::Gmm(m) => run(&CpuBackend, m, g, problem.rule, kind, &inputs),
        CliModel::Mlp(m) => run(&CpuBackend, m.as_ref(), g, problem.rule, kind, &inputs),
        CliModel::Policy(m) => run(&CpuBackend, m.as_ref(), g, problem.rule, kind, &inputs),
    }
}

/// Runs `kind` on a backend that has both models.
#[cfg(feature = "cuda")]
fn run_on<B: Backend>(
    backend: &B,
    problem: &Problem,
    kind: &SamplerKind,
) -> picardiff::Result<RunOutput>
where
    GmmModel: ScoreModel<B>,
    picardiff::model::MlpModel: ScoreModel<B>,
{
    let (g, inputs) = (&problem.grid, problem.inputs());
    match &problem.model {
        CliModel::Gmm(m) => run(backend, m, g, problem.rule, kind, &inputs),
        CliModel::Mlp(m) => run(backend, m.as_ref(), g, problem.rule, kind, &inputs),
        CliModel::Policy(_) => Err(picardiff::Error::device(
            "run",
            "Diffusion Policy models run on the CPU backend only for now (their CUDA ops are not implemented): use --device cpu",
        )),
    }
}
