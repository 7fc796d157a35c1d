//! A progress line for long `sample`/`compare` runs, on stderr and only when stderr is a terminal
//! (never in pipes, files or tests): the library's progress observer (`sampler::progress`) feeds
//! it; it appears after [`QUIET_FOR`], is redrawn at most every [`REDRAW`] and is erased when the
//! run ends.

use std::cell::Cell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::{Duration, Instant};

use picardiff::sampler::progress::{with_progress, Progress};

/// Runs shorter than this print no progress.
const QUIET_FOR: Duration = Duration::from_millis(500);
/// The shortest time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);
/// Width of the bar in characters.
const BAR: usize = 24;

/// Runs `f` (one sampler run labelled `label`) with a progress line on a terminal's stderr.
pub fn observe<R>(label: &str, f: impl FnOnce() -> R) -> R {
    if !std::io::stderr().is_terminal() {
        return f();
    }
    let line = Rc::new(Line {
        label: label.to_string(),
        start: Instant::now(),
        drawn: Cell::new(None),
    });
    let observer = line.clone();
    let out = with_progress(Rc::new(move |p| observer.update(p)), f);
    line.erase();
    out
}

/// The state of one progress line.
struct Line {
    label: String,
    start: Instant,
    /// When the line was last drawn (None: not on screen).
    drawn: Cell<Option<Instant>>,
}

impl Line {
    fn update(&self, p: Progress) {
        let now = Instant::now();
        if p.done >= p.total {
            return self.erase();
        }
        let due = match self.drawn.get() {
            None => now.duration_since(self.start) >= QUIET_FOR,
            Some(t) => now.duration_since(t) >= REDRAW,
        };
        if due {
            let text = render(&self.label, p, now.duration_since(self.start));
            eprint!("\r\x1b[2K{text}");
            self.drawn.set(Some(now));
        }
    }

    /// Erases the line if it is on screen.
    fn erase(&self) {
        if self.drawn.take().is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// `picardiff: picard (scan) [######------] 412/1000 steps final, 17 rounds, 3.2 s`.
fn render(label: &str, p: Progress, elapsed: Duration) -> String {
    let filled = (p.done.min(p.total) * BAR)
        .checked_div(p.total)
        .unwrap_or(BAR);
    format!(
        "picardiff: {label} [{}{}] {}/{} steps final, {} rounds, {:.1} s",
        "#".repeat(filled),
        "-".repeat(BAR - filled),
        p.done,
        p.total,
        p.rounds,
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: usize, total: usize) -> Progress {
        Progress {
            sampler: "picard",
            done,
            total,
            rounds: 17,
        }
    }

    #[test]
    fn the_line_shows_the_final_steps_rounds_and_time() {
        let text = render("picard (scan)", at(500, 1000), Duration::from_millis(3240));
        let bar = format!("[{}{}]", "#".repeat(12), "-".repeat(12));
        assert_eq!(
            text,
            format!("picardiff: picard (scan) {bar} 500/1000 steps final, 17 rounds, 3.2 s")
        );
        assert!(render("s", at(0, 0), Duration::ZERO).contains(&"#".repeat(BAR)));
        assert!(render("s", at(3, 1000), Duration::ZERO).contains(&"-".repeat(BAR)));
    }

    /// Not drawn before QUIET_FOR; a finished run erases nothing that was never drawn.
    #[test]
    fn short_runs_draw_nothing() {
        let line = Line {
            label: "sequential".into(),
            start: Instant::now(),
            drawn: Cell::new(None),
        };
        line.update(at(10, 1000));
        assert!(line.drawn.get().is_none());
        let old = Line {
            label: "sequential".into(),
            start: Instant::now() - 2 * QUIET_FOR,
            drawn: Cell::new(None),
        };
        old.update(at(10, 1000));
        assert!(old.drawn.get().is_some());
        old.update(at(1000, 1000));
        assert!(
            old.drawn.get().is_none(),
            "the end of the run erases the line"
        );
    }
}
