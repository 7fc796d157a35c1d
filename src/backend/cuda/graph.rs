//! CUDA graph capture for [`CudaBackend`]: a body (one Picard iteration or sequential step) is
//! recorded on the stream into an instantiated graph and launched; where the driver or cuBLAS
//! refuses the graph the body runs eagerly instead and graphs are turned off with the reason kept.
//! An open capture is always ended, also when the body panics ([`Capture`]'s `Drop`).

use std::sync::Arc;

use cudarc::driver::{sys, CudaGraph, CudaStream, DriverError};

use super::{CudaBackend, DeviceResultExt};
use crate::error::Result;

/// Ends an open stream capture when dropped before [`Capture::finish`] (a body that panics must not
/// leave the stream capturing), discarding what was recorded.
struct Capture<'a> {
    stream: &'a Arc<CudaStream>,
    open: bool,
}

impl Capture<'_> {
    /// Ends the capture and instantiates the graph. An error a `Drop` stored on the context is the
    /// run's error (`Err`); the capture is then discarded by `Drop`, since cudarc's `end_capture`
    /// would return that error before ending the capture. A refused capture is `Ok(Err(_))`.
    fn finish(mut self) -> Result<std::result::Result<Option<CudaGraph>, DriverError>> {
        self.stream.context().check_err().during("iteration")?;
        let flags = sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH;
        let graph = self.stream.end_capture(flags);
        // SAFETY: the stream is live; the query only reads its capture status.
        let status =
            unsafe { cudarc::driver::result::stream::is_capturing(self.stream.cu_stream()) };
        self.open = matches!(
            status,
            Ok(sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_ACTIVE)
                | Ok(sys::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_INVALIDATED)
        );
        match graph {
            // Still capturing after an error: cudarc returned an error stored meanwhile (from
            // binding the context) before ending the capture. Drop discards the capture.
            Err(e) if self.open => Err(e).during("iteration"),
            graph => Ok(graph),
        }
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: the stream is live and capturing (begun by CudaBackend::capture); the partial
            // graph it returns is destroyed at once and never instantiated.
            unsafe {
                if let Ok(g) = cudarc::driver::result::stream::end_capture(self.stream.cu_stream())
                {
                    if !g.is_null() {
                        let _ = cudarc::driver::result::graph::destroy(g);
                    }
                }
            }
        }
    }
}

impl CudaBackend {
    /// Records `body` on the stream into an instantiated graph. `Ok(Err(why))`: the driver or
    /// cuBLAS refused the capture (the caller runs the body eagerly); `Err`: an error of the run
    /// itself (one stored on the context before or during the capture), never taken for a refusal.
    fn capture<W>(
        &self,
        w: &mut W,
        body: &mut dyn FnMut(&mut W) -> Result<()>,
    ) -> Result<std::result::Result<CudaGraph, String>> {
        self.ctx.check_err().during("iteration")?;
        self.bind("iteration (capture)")?;
        if let Err(e) = self
            .stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        {
            return Ok(Err(format!("begin capture: {e:?}")));
        }
        let capture = Capture {
            stream: &self.stream,
            open: true,
        };
        let recorded = body(w);
        let graph = capture.finish()?;
        if let Err(e) = recorded {
            // An error stored meanwhile is the run's, not the capture's.
            self.ctx.check_err().during("iteration")?;
            return Ok(Err(format!("during capture: {e}")));
        }
        Ok(match graph {
            Ok(Some(graph)) => Ok(graph),
            Ok(None) => Err("the capture produced no graph".into()),
            Err(e) => Err(format!("end capture: {e:?}")),
        })
    }

    /// Records `body` and launches the recording: `Some(graph)` once it ran. When the capture or
    /// the graph's first launch fails, the body runs eagerly instead (`None`): if it fails again,
    /// that is the run's error (graphs stay on); if it succeeds, the driver or cuBLAS refused the
    /// graph, and graphs are turned off with the reason kept. An asynchronous error stored on the
    /// context is the run's error, not a refusal.
    pub(super) fn record_and_launch<W>(
        &self,
        w: &mut W,
        body: &mut dyn FnMut(&mut W) -> Result<()>,
    ) -> Result<Option<CudaGraph>> {
        // A graph whose first launch fails enqueued nothing: like a refused capture, the body
        // then runs eagerly and decides whether graphs were the problem.
        let refusal = match self.capture(w, body)? {
            Ok(graph) => match graph.launch() {
                Ok(()) => return Ok(Some(graph)),
                Err(e) => {
                    self.ctx.check_err().during("iteration")?;
                    format!("first graph launch: {e:?}")
                }
            },
            Err(why) => why,
        };
        body(w)?;
        self.disable_graphs(&refusal);
        Ok(None)
    }
}
