//! Backend selection (`--device cpu|cuda|auto`) over the library's one dispatch
//! (`picardiff::device`), with what the command line adds: saying which device `auto` picked, and
//! a line when a long run ends on a terminal.

use std::io::IsTerminal;
use std::time::Instant;

use picardiff::prelude::*;
use picardiff::spec::DeviceName;

use super::config::Problem;
use super::{CliError, CliResult};

/// An opened backend (the library's).
pub struct Device(picardiff::device::Device);

impl Device {
    /// Opens the backend named by `--device`. `auto` prefers CUDA when built with it and a GPU
    /// opens, and says on stderr which device it chose (and why, when CUDA was wanted but failed).
    pub fn open(name: DeviceName) -> CliResult<Device> {
        #[cfg(not(feature = "cuda"))]
        if name == DeviceName::Cuda {
            // The user asked for CUDA: say how to get it.
            return Err(CliError::new(
                "--device cuda: built without CUDA support: rebuild with --features cuda",
            ));
        }
        let (device, why) = picardiff::device::Device::open(name, 0).map_err(|e| match name {
            DeviceName::Cuda => CliError::new(format!("cannot open CUDA device 0: {e}")),
            _ => CliError::from(e),
        })?;
        if name == DeviceName::Auto {
            let why = match why {
                Some(e) if cfg!(feature = "cuda") => format!("; CUDA device 0 unavailable: {e}"),
                // A CPU-only build simply has no other device: nothing to report.
                _ => String::new(),
            };
            eprintln!("picardiff: device {} (auto{why})", device.name());
        }
        Ok(Device(device))
    }

    /// The backend's name (`cpu`, `cuda`).
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// Whether this device records Picard iterations into graphs (CUDA) at all.
    pub fn has_graphs(&self) -> bool {
        self.0.has_graphs()
    }

    /// Turns CUDA graphs on or off (a no-op on the CPU).
    pub fn set_graphs(&self, on: bool) {
        self.0.set_graphs(on)
    }

    /// Auto's choice between sequential and `picard` for `problem` on this device.
    pub fn choose(
        &self,
        problem: &Problem,
        picard: &SamplerKind,
    ) -> CliResult<picardiff::sampler::auto::Choice> {
        let inputs = problem.inputs();
        let model = problem.model.as_ref();
        Ok(model.choose(&self.0, &problem.grid, problem.rule, picard, &inputs)?)
    }

    /// Runs `kind` on `problem`; prints a line when a long run ends and stderr is a terminal.
    pub fn run(&self, problem: &Problem, kind: &SamplerKind, label: &str) -> CliResult<RunOutput> {
        let start = Instant::now();
        let out = problem.model.as_ref().run(
            &self.0,
            &problem.grid,
            problem.rule,
            kind,
            &problem.inputs(),
        )?;
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
