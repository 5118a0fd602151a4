//! [`ModelError`]: everything that can go wrong while finding, loading or running Depth Pro.
//!
//! Messages say what went wrong and what to do, and end with the file path when a file is involved.

use std::fmt;
use std::path::PathBuf;

use depth2ply_core::ImageSize;

/// Where the official Depth Pro checkpoint can be downloaded (Hugging Face hub page).
pub const WEIGHTS_HUB_PAGE: &str = "https://huggingface.co/apple/DepthPro";

/// Direct download URL of `depth_pro.pt` on Apple's CDN (what `get_pretrained_models.sh` fetches).
pub const WEIGHTS_APPLE_URL: &str = "https://ml-site.cdn-apple.com/models/depth-pro/depth_pro.pt";

/// One-line licence note printed whenever we tell users to fetch the weights.
pub const WEIGHTS_LICENCE_NOTE: &str = "licence: the GitHub release puts the weights under Apple's \
     sample-code licence, the Hugging Face hub page under the research-only apple-amlr licence; \
     commercial use is unclear, read both before using the weights";

/// How many names an error message lists before it says "… and N more".
const LIST_LIMIT: usize = 8;

/// A tensor the network asked for, with the shape it expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingTensor {
    /// Checkpoint key (Apple naming).
    pub name: String,
    /// Shape the network expected; `None` when it asked without a shape.
    pub expected: Option<Vec<usize>>,
}

/// A tensor whose shape in the checkpoint differs from what the network expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Checkpoint key (Apple naming).
    pub name: String,
    /// Shape the network expected.
    pub expected: Vec<usize>,
    /// Shape stored in the checkpoint.
    pub found: Vec<usize>,
}

/// A checkpoint tensor the network never asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedTensor {
    /// Checkpoint key (Apple naming).
    pub name: String,
    /// Its shape in the checkpoint.
    pub shape: Vec<usize>,
}

/// Result of comparing the tensors a network asked for with the tensors of a checkpoint, like
/// PyTorch's `load_state_dict(strict=True)`. All lists are sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrictReport {
    /// Requested but absent from the checkpoint.
    pub missing: Vec<MissingTensor>,
    /// Present with another shape.
    pub mismatched: Vec<ShapeMismatch>,
    /// Present but never requested.
    pub unused: Vec<UnusedTensor>,
}

impl StrictReport {
    /// `true` when the checkpoint matches the network exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.unused.is_empty()
    }
}

impl fmt::Display for StrictReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sections = Vec::new();
        if !self.missing.is_empty() {
            let items = self.missing.iter().map(|m| match &m.expected {
                Some(shape) => format!("{} {shape:?}", m.name),
                None => m.name.clone(),
            });
            sections.push(format!(
                "{} missing: {}",
                self.missing.len(),
                truncated_list(items)
            ));
        }
        if !self.mismatched.is_empty() {
            let items = self
                .mismatched
                .iter()
                .map(|m| format!("{} expected {:?} found {:?}", m.name, m.expected, m.found));
            sections.push(format!(
                "{} with the wrong shape: {}",
                self.mismatched.len(),
                truncated_list(items)
            ));
        }
        if !self.unused.is_empty() {
            let items = self.unused.iter().map(|u| format!("{} {:?}", u.name, u.shape));
            sections.push(format!(
                "{} unexpected: {}",
                self.unused.len(),
                truncated_list(items)
            ));
        }
        if sections.is_empty() {
            write!(f, "all tensors match")
        } else {
            write!(f, "{}", sections.join("; "))
        }
    }
}

/// Joins up to [`LIST_LIMIT`] items and says how many were left out.
pub(crate) fn truncated_list(items: impl Iterator<Item = String>) -> String {
    let mut shown = Vec::new();
    let mut rest = 0usize;
    for item in items {
        if shown.len() < LIST_LIMIT {
            shown.push(item);
        } else {
            rest += 1;
        }
    }
    let mut out = shown.join(", ");
    if rest > 0 {
        out.push_str(&format!(", … and {rest} more"));
    }
    out
}

/// Everything that can go wrong in `depth2ply-model`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A tensor operation failed inside Candle (shapes, device memory, kernels).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// No weights file could be found (and none could be downloaded).
    #[error(
        "Depth Pro weights not found ({searched}). {download}. Get `depth_pro.pt` (1.9 GB) from \
         {hub} or {apple}, then pass it with --weights <file>, set DEPTH2PLY_WEIGHTS=<file>, or save \
         it as the cache file; {licence}: {cache_path}",
        hub = WEIGHTS_HUB_PAGE,
        apple = WEIGHTS_APPLE_URL,
        licence = WEIGHTS_LICENCE_NOTE
    )]
    WeightsNotFound {
        /// The places that were looked at, in order, as one readable sentence.
        searched: String,
        /// What happened about downloading (disabled, not compiled in, or the failure).
        download: String,
        /// Where the cache file is expected.
        cache_path: PathBuf,
    },

    /// A weights path given explicitly (flag or environment variable) does not exist.
    #[error(
        "the weights file given by {origin} does not exist or is not a file; fix the path or download `depth_pro.pt` \
         from {hub} ({licence}): {path}",
        hub = WEIGHTS_HUB_PAGE,
        licence = WEIGHTS_LICENCE_NOTE
    )]
    WeightsPathMissing {
        /// Where the path came from, e.g. `--weights` or `DEPTH2PLY_WEIGHTS`.
        origin: String,
        /// The path that does not exist.
        path: PathBuf,
    },

    /// Downloading the weights failed.
    #[error(
        "downloading the Depth Pro weights from {url} failed: {reason}; check the network or the \
         endpoint (DEPTH2PLY_HF_ENDPOINT / HF_ENDPOINT), or download `depth_pro.pt` by hand from \
         {hub} or {apple} and pass it with --weights ({licence}); a partial download is kept and \
         resumed next time: {path}",
        hub = WEIGHTS_HUB_PAGE,
        apple = WEIGHTS_APPLE_URL,
        licence = WEIGHTS_LICENCE_NOTE
    )]
    Download {
        /// The URL that was requested.
        url: String,
        /// What went wrong.
        reason: String,
        /// The destination file.
        path: PathBuf,
    },

    /// Reading or writing a file failed.
    #[error("could not {action}: {source}; check that the file exists and is readable: {path}")]
    Io {
        /// What we were doing, e.g. `open the weights file`.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
        /// The file.
        path: PathBuf,
    },

    /// The file is not a format we can read (neither a PyTorch zip checkpoint nor safetensors).
    #[error(
        "unrecognised weights file ({found}); expected Apple's `depth_pro.pt` (PyTorch zip) or a \
         .safetensors file: {path}"
    )]
    UnknownFormat {
        /// What the first bytes look like.
        found: String,
        /// The file.
        path: PathBuf,
    },

    /// A pre-1.6 PyTorch checkpoint (raw pickle, not a zip archive).
    #[error(
        "legacy (non-zip) PyTorch checkpoint; re-save it with a current PyTorch: python -c \"import \
         torch; torch.save(torch.load('IN', map_location='cpu'), 'OUT.pt')\" and use OUT.pt: {path}"
    )]
    LegacyPickle {
        /// The file.
        path: PathBuf,
    },

    /// The checkpoint is a dict that wraps the state dict (e.g. `{"state_dict": …, "epoch": …}`).
    #[error(
        "the checkpoint wraps its tensors in a dict (top-level keys: {keys}); save the inner state \
         dict on its own: python -c \"import torch; torch.save(torch.load('IN', \
         map_location='cpu')['{inner}'], 'OUT.pt')\" and use OUT.pt: {path}"
    )]
    NestedStateDict {
        /// The top-level keys found (truncated list).
        keys: String,
        /// The key that holds the tensors (best guess).
        inner: String,
        /// The file.
        path: PathBuf,
    },

    /// The file is truncated or corrupt.
    #[error("truncated or corrupt weights file ({reason}); download it again: {path}")]
    Corrupt {
        /// What is wrong.
        reason: String,
        /// The file.
        path: PathBuf,
    },

    /// The file is readable but holds no Depth Pro tensors.
    #[error(
        "no Depth Pro tensors in this checkpoint (first keys: {sample}); expected Apple's \
         `depth_pro.pt` names (encoder.*, decoder.*, head.*, fov.*) or Hugging Face DepthPro names \
         (depth_pro.*, fusion_stage.*, head.layers.*, fov_model.*): {path}"
    )]
    NotDepthPro {
        /// A few keys from the file.
        sample: String,
        /// The file.
        path: PathBuf,
    },

    /// A tensor has an element type we do not convert (only f16, bf16, f32 and f64 are accepted).
    #[error(
        "tensor `{name}` has unsupported element type {dtype}; convert the checkpoint to f16 or f32: {path}"
    )]
    UnsupportedDtype {
        /// Tensor name (as stored in the file).
        name: String,
        /// The element type found.
        dtype: String,
        /// The file.
        path: PathBuf,
    },

    /// A Hugging Face checkpoint has only some of the `query`/`key`/`value` parts of an attention.
    #[error(
        "Hugging Face checkpoint misses attention parts for {names}; the file is incomplete, \
         download it again: {path}"
    )]
    IncompleteQkv {
        /// The Apple `qkv` tensors that could not be assembled, with the missing parts.
        names: String,
        /// The file.
        path: PathBuf,
    },

    /// The checkpoint does not match the network (PyTorch `strict=True` semantics).
    #[error(
        "the checkpoint does not match the Depth Pro network: {report}; use the official \
         `depth_pro.pt` (or its Hugging Face conversion) with the default model config: {path}"
    )]
    StrictLoad {
        /// Every missing, mis-shaped and unused tensor.
        report: StrictReport,
        /// The file.
        path: PathBuf,
    },

    /// A weight contains NaN or infinity.
    #[error("tensor `{name}` {detail}; the checkpoint is damaged, download it again: {path}")]
    NonFiniteWeight {
        /// Tensor name (as stored in the file).
        name: String,
        /// What was found, e.g. `contains 3 NaN/inf values`.
        detail: String,
        /// The file.
        path: PathBuf,
    },

    /// The requested device is not available in this build or on this machine.
    #[error("device {device} is not available: {reason}; use the CPU or rebuild with the matching feature (cuda / metal)")]
    UnsupportedDevice {
        /// The device asked for, e.g. `cuda:0`.
        device: String,
        /// Why it is not available.
        reason: String,
    },

    /// The network configuration is not a working Depth Pro architecture.
    #[error("{0}")]
    InvalidConfig(#[from] crate::config::ConfigError),

    /// A known focal length that cannot be used.
    #[error("focal length {focal_px} px is not usable: it must be finite and > 0 pixels")]
    InvalidFocal {
        /// The rejected focal length in pixels.
        focal_px: f64,
    },

    /// No focal length was given and the configuration has no field-of-view network to predict one.
    #[error(
        "this Depth Pro configuration has no field-of-view network, so the focal length cannot be \
         predicted; pass a known focal length"
    )]
    FocalRequired,

    /// The field-of-view head predicted an angle that gives no usable focal length.
    #[error(
        "the field-of-view head predicted {fov_deg}°, which gives no usable focal length; pass a known \
         focal length (e.g. --focal-px)"
    )]
    InvalidPredictedFov {
        /// The predicted horizontal field of view in degrees.
        fov_deg: f64,
    },

    /// The input image is too small to give a meaningful depth map.
    #[error("image {size} is too small: both sides must be at least {min_px} px")]
    ImageTooSmall {
        /// The image size.
        size: ImageSize,
        /// Minimum side length in pixels.
        min_px: u32,
    },

    /// The input image is too large for the output buffers.
    #[error("image {size} is too large: at most {max_pixels} pixels are supported; downscale it first")]
    ImageTooLarge {
        /// The image size.
        size: ImageSize,
        /// Maximum number of pixels.
        max_pixels: usize,
    },
}

impl ModelError {
    /// Wraps an I/O error with the action and the file.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            source,
            path: path.into(),
        }
    }

    /// A [`ModelError::Corrupt`] for `path`.
    pub(crate) fn corrupt(reason: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::Corrupt {
            reason: reason.into(),
            path: path.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_report_lists_are_truncated_with_counts() {
        let report = StrictReport {
            missing: (0..11)
                .map(|i| MissingTensor {
                    name: format!("m{i:02}"),
                    expected: Some(vec![2, i]),
                })
                .collect(),
            mismatched: vec![ShapeMismatch {
                name: "w".into(),
                expected: vec![3],
                found: vec![4],
            }],
            unused: vec![UnusedTensor {
                name: "extra".into(),
                shape: vec![1],
            }],
        };
        let text = report.to_string();
        assert!(text.starts_with("11 missing: m00 [2, 0], m01 [2, 1]"), "{text}");
        assert!(text.contains("m07 [2, 7], … and 3 more"), "{text}");
        assert!(!text.contains("m08"), "{text}");
        assert!(
            text.contains("1 with the wrong shape: w expected [3] found [4]"),
            "{text}"
        );
        assert!(text.contains("1 unexpected: extra [1]"), "{text}");
        assert!(!report.is_clean());
        assert!(StrictReport::default().is_clean());
    }

    #[test]
    fn not_found_message_says_where_and_what() {
        let err = ModelError::WeightsNotFound {
            searched: "no --weights, DEPTH2PLY_WEIGHTS unset".into(),
            download: "downloading is disabled".into(),
            cache_path: PathBuf::from("/home/u/.cache/depth2ply/depth_pro.pt"),
        };
        let text = err.to_string();
        for needle in [
            "--weights",
            "DEPTH2PLY_WEIGHTS",
            WEIGHTS_HUB_PAGE,
            WEIGHTS_APPLE_URL,
            "apple-amlr",
            "commercial",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert!(text.ends_with("/home/u/.cache/depth2ply/depth_pro.pt"), "{text}");
    }
}
