//! What the tool prints: per-image summary lines, warnings, errors, the progress bar and `-v` timings.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How much to print on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Errors only.
    Quiet,
    /// Errors, warnings and one summary line per image.
    #[default]
    Normal,
    /// Also timings and peak memory.
    Verbose,
}

/// Overall result of a run, turned into the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every input succeeded (exit 0).
    AllSucceeded,
    /// At least one input failed (exit 1).
    SomeFailed,
}

impl RunStatus {
    /// The exit code of the contract: 0 or 1 (2 is clap's, for usage errors).
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            RunStatus::AllSucceeded => std::process::ExitCode::SUCCESS,
            RunStatus::SomeFailed => std::process::ExitCode::FAILURE,
        }
    }
}

/// Prints to stderr, above the progress bar when there is one.
pub struct Reporter {
    verbosity: Verbosity,
    bar: ProgressBar,
}

impl Reporter {
    /// A reporter for `total` images: a progress bar is drawn only for several images, on a terminal and
    /// when not quiet.
    pub fn new(verbosity: Verbosity, total: usize) -> Self {
        let show_bar = total > 1 && verbosity != Verbosity::Quiet && std::io::stderr().is_terminal();
        let bar = if show_bar {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} {msg}") {
                bar.set_style(style);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        Self { verbosity, bar }
    }

    /// The verbosity this reporter was made with.
    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    fn line(&self, text: &str) {
        // `suspend` (not `println`): `println` prints nothing when the bar is hidden.
        self.bar.suspend(|| eprintln!("{text}"));
    }

    /// An error for one input (always printed).
    pub fn error(&self, err: &anyhow::Error) {
        self.line(&format!("depth2ply: error: {}", error_chain(err)));
    }

    /// A warning about one input (not with `-q`).
    pub fn warning(&self, path: &Path, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(&format!("depth2ply: warning: {text}: {}", path.display()));
        }
    }

    /// A normal message (not with `-q`).
    pub fn info(&self, text: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(text);
        }
    }

    /// A `-v` message.
    pub fn verbose(&self, text: &str) {
        if self.verbosity == Verbosity::Verbose {
            self.line(text);
        }
    }

    /// Shows which image is being worked on.
    pub fn start(&self, path: &Path) {
        self.bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }

    /// One image done (successfully or not).
    pub fn advance(&self) {
        self.bar.inc(1);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The error and its causes on one line, like anyhow's `{:#}`, but leaving out a cause whose text the
/// message already contains: the libraries' messages quote their I/O cause and end with the path, and
/// repeating the cause after the path would hide that path in the middle of the line.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Peak resident memory of this process (Linux `VmHWM`) in bytes, if known.
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `1.23 s` / `45 ms`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{:.0} ms", seconds * 1e3)
    }
}

/// `"peak memory 1.2 GiB"` or `"peak memory unknown"`.
pub fn format_peak_memory() -> String {
    match peak_memory_bytes() {
        Some(bytes) => format!("peak memory {:.1} MiB", bytes as f64 / (1024.0 * 1024.0)),
        None => "peak memory unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_skips_causes_already_quoted() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(io)
            .context("cannot open (no such file): a.png")
            .context("reading depth");
        assert_eq!(
            error_chain(&err),
            "reading depth: cannot open (no such file): a.png"
        );
        let err = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(error_chain(&err), format!("{err:#}"));
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.50 s");
        assert_eq!(format_duration(Duration::from_millis(45)), "45 ms");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_memory_is_read_on_linux() {
        // Any running test binary has touched at least a few hundred KiB.
        assert!(peak_memory_bytes().unwrap() > 100 * 1024);
    }
}
