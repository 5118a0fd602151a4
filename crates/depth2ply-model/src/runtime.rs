//! Process-wide CPU runtime settings: how many threads the network uses.
//!
//! Candle runs its CPU work on two pools, and both must agree for `--threads` to mean anything:
//! - matrix products (gemm) and convolutions run on **rayon's global pool**, and Candle passes
//!   `$RAYON_NUM_THREADS` (read on every matmul) to gemm as its thread count;
//! - elementwise ops run on Candle's own barrier pool, sized once from `$CANDLE_NUM_THREADS` (else
//!   `$RAYON_NUM_THREADS`, else the physical core count) when the first big elementwise op runs.
//!
//! This crate's own kernels (`vit_cpu.rs`, `kernels/`) run on rayon's global pool too. [`set_threads`] sets both
//! variables and builds the rayon pool, so it must run **before** any tensor work and before any
//! other thread is started (it changes the process environment).

/// Thread settings that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// Zero threads were requested.
    #[error("thread count must be at least 1, got 0; pass a positive --threads")]
    ZeroThreads,
    /// Rayon's global pool was already running (something used rayon before `set_threads`).
    #[error(
        "cannot set {requested} threads: the thread pool already runs {running} threads; call \
         set_threads at the very start of the program, before any image or tensor work"
    )]
    PoolAlreadyStarted {
        /// Threads asked for.
        requested: usize,
        /// Threads of the pool that is already running.
        running: usize,
    },
}

/// The default thread count: `$RAYON_NUM_THREADS` when set to a positive number, else the number of
/// physical cores (Candle's own default; SMT siblings do not speed up gemm).
pub fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(num_cpus::get_physical)
        .max(1)
}

/// Makes gemm, convolutions, Candle's elementwise ops and this crate's kernels all use `threads`
/// threads: sets `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` and builds rayon's global pool.
///
/// Call it once, first thing in `main`, while the process has a single thread: it edits the
/// environment, and neither pool can be resized once started. Returns the thread count in effect.
pub fn set_threads(threads: usize) -> Result<usize, RuntimeError> {
    if threads == 0 {
        return Err(RuntimeError::ZeroThreads);
    }
    let value = threads.to_string();
    // Edition 2021: `set_var` is safe to call; the process is still single-threaded here (documented
    // precondition), which is what makes it sound.
    std::env::set_var("RAYON_NUM_THREADS", &value);
    std::env::set_var("CANDLE_NUM_THREADS", &value);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        Ok(()) => Ok(threads),
        Err(_) => {
            let running = rayon::current_num_threads();
            if running == threads {
                Ok(threads)
            } else {
                Err(RuntimeError::PoolAlreadyStarted {
                    requested: threads,
                    running,
                })
            }
        }
    }
}

/// Peak resident memory of this process so far in bytes (Linux `VmHWM`); `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("VmHWM:").map(|kib| kib * 1024)
}

/// Current resident memory of this process in bytes (Linux `VmRSS`); `None` elsewhere.
pub fn current_rss_bytes() -> Option<u64> {
    proc_status_kib("VmRSS:").map(|kib| kib * 1024)
}

/// Resets the peak reported by [`peak_rss_bytes`] to the current resident size (Linux ≥ 4.0, writes
/// `5` to `/proc/self/clear_refs`), so that the peak of one stage can be measured. Returns `false`
/// when the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn proc_status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_rejected() {
        assert_eq!(set_threads(0), Err(RuntimeError::ZeroThreads));
        assert!(default_threads() >= 1);
    }

    #[test]
    fn rss_is_reported_on_linux() {
        if cfg!(target_os = "linux") {
            let peak = peak_rss_bytes().unwrap_or(0);
            let now = current_rss_bytes().unwrap_or(0);
            assert!(now > 0 && peak >= now, "peak {peak} now {now}");
        }
    }
}
