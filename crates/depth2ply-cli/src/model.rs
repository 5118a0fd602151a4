//! The network's side of the CLI: which devices this build has, and showing what the library's
//! [`LazyDepthPro`] does (download progress, messages).

use std::io::IsTerminal;

use depth2ply_pipeline::{LazyDepthPro, NetworkEvent, NetworkSettings};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::DeviceArg;
use crate::summary::{Reporter, Verbosity};

/// The network, loaded on first use, reporting through `reporter` (`--device` as typed: `device`).
pub fn lazy_network<'a>(
    settings: NetworkSettings,
    device: DeviceArg,
    reporter: &'a Reporter,
) -> LazyDepthPro<'a> {
    let bar = ProgressBar::hidden();
    LazyDepthPro::new(settings).with_observer(move |event| match event {
        NetworkEvent::Download(progress) => {
            if bar.is_hidden() && reporter.verbosity() != Verbosity::Quiet && std::io::stderr().is_terminal()
            {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                if let Ok(style) =
                    ProgressStyle::with_template("downloading weights {bar:30} {bytes}/{total_bytes}")
                {
                    bar.set_style(style);
                }
            }
            if let Some(total) = progress.total_bytes {
                bar.set_length(total);
            }
            bar.set_position(progress.downloaded_bytes);
        }
        NetworkEvent::Downloaded { url, path } => {
            bar.finish_and_clear();
            reporter.info(&format!("depth2ply: downloaded {url} to {}", path.display()));
        }
        NetworkEvent::Loading { path, origin } => {
            bar.finish_and_clear();
            reporter.verbose(&format!(
                "depth2ply: loading {} ({origin:?}) on {device:?}",
                path.display()
            ));
        }
    })
}

/// Checks that `device` was compiled in; the message says how to get it.
pub fn check_device(device: DeviceArg) -> Result<(), String> {
    let (compiled, feature) = match device {
        DeviceArg::Cpu => (true, ""),
        DeviceArg::Cuda => (cfg!(feature = "cuda"), "cuda"),
        DeviceArg::Metal => (cfg!(feature = "metal"), "metal"),
    };
    if compiled {
        Ok(())
    } else {
        Err(format!(
            "--device {feature} is not available in this build; rebuild with `cargo build --release -p \
             depth2ply --features {feature}` or use --device cpu"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        assert!(check_device(DeviceArg::Cpu).is_ok());
        if !cfg!(feature = "cuda") {
            assert!(check_device(DeviceArg::Cuda)
                .unwrap_err()
                .contains("--features cuda"));
        }
    }
}
