//! The files of one converted photo, written all-or-nothing: the PLY (with its provenance comments)
//! and, on request, the depth map as `.npz` and its preview PNG.

use std::path::{Path, PathBuf};

use depth2ply_geometry::atomic::{write_atomically, AtomicWriteError};
use depth2ply_geometry::depth_io::{write_depth_npz, DepthIoError};
use depth2ply_geometry::ply::{
    focal_comment, intrinsics_comment, write_ply_file, PlyEncoding, PlyError, PlyWriteOptions,
};
use depth2ply_geometry::preview::inverse_depth_preview;
use depth2ply_geometry::DepthMap;
use image::codecs::png::PngEncoder;

use crate::convert::Conversion;

/// Which files to write for each photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputOptions {
    /// PLY encoding. Default binary little-endian.
    pub encoding: PlyEncoding,
    /// Also write the depth map (`<stem>.npz`: `depth` in metres and `focal_px`, as Apple's
    /// `depth-pro-run` writes it) and its turbo-coloured inverse-depth preview (`<stem>.depth.png`).
    pub save_depth: bool,
}

/// The paths of one photo's outputs. Creating it touches no file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSet {
    ply: PathBuf,
    depth: Option<DepthOutputs>,
    encoding: PlyEncoding,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DepthOutputs {
    npz: PathBuf,
    preview: PathBuf,
}

/// An output that cannot or could not be written. Messages end with the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output's folder does not exist and cannot be created.
    #[error("cannot create the output folder ({source}); check -o and its permissions: {}", folder.display())]
    CreateFolder {
        /// The folder.
        folder: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A folder on the way to the output is a file.
    #[error(
        "cannot create the output folder: {} is a file, not a folder; pass -o somewhere else: {}",
        file.display(),
        output.display()
    )]
    ParentIsFile {
        /// The file that is in the way.
        file: PathBuf,
        /// The output.
        output: PathBuf,
    },
    /// An output path is one of the inputs.
    #[error("the output would overwrite an input file; pass -o to write somewhere else: {}", path.display())]
    WouldOverwriteInput {
        /// The output path.
        path: PathBuf,
    },
    /// Writing one of the files failed; the files of this photo written before it were removed again.
    #[error("cannot write the outputs for {}", photo.display())]
    Write {
        /// The photo whose outputs these are.
        photo: PathBuf,
        /// Why.
        #[source]
        source: WriteError,
    },
}

/// Why one output file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The PLY.
    #[error(transparent)]
    Ply(#[from] PlyError),
    /// The depth `.npz`.
    #[error(transparent)]
    Depth(#[from] DepthIoError),
    /// The preview PNG.
    #[error(transparent)]
    Preview(#[from] AtomicWriteError),
}

impl OutputSet {
    /// The outputs for a PLY at `ply`: with [`OutputOptions::save_depth`], also `<stem>.npz` and
    /// `<stem>.depth.png` next to it.
    pub fn new(ply: PathBuf, options: &OutputOptions) -> Self {
        let depth = options.save_depth.then(|| {
            let stem = ply
                .file_stem()
                .map_or_else(|| "depth".into(), |s| s.to_string_lossy().into_owned());
            DepthOutputs {
                npz: ply.with_file_name(format!("{stem}.npz")),
                preview: ply.with_file_name(format!("{stem}.depth.png")),
            }
        });
        Self {
            ply,
            depth,
            encoding: options.encoding,
        }
    }

    /// The PLY.
    pub fn ply(&self) -> &Path {
        &self.ply
    }

    /// The files besides the PLY (the depth `.npz` and its preview), in the order they are reported.
    pub fn extras(&self) -> Vec<&Path> {
        match &self.depth {
            Some(d) => vec![d.npz.as_path(), d.preview.as_path()],
            None => Vec::new(),
        }
    }

    /// Creates the PLY's folder when missing (`-o` folders mirror the input tree), and refuses any output
    /// that would overwrite one of `inputs` (the photo, a depth file).
    pub fn prepare(&self, inputs: &[&Path]) -> Result<(), OutputError> {
        ensure_parent(&self.ply)?;
        for output in std::iter::once(self.ply.as_path()).chain(self.extras()) {
            let target = canonical_path(output);
            if inputs.iter().any(|input| canonical_path(input) == target) {
                return Err(OutputError::WouldOverwriteInput {
                    path: output.to_path_buf(),
                });
            }
        }
        Ok(())
    }

    /// Writes every file of `conversion` (made from the photo `photo`), each atomically (a temporary
    /// file, then a rename); if one fails, the ones already written are removed again, so that a failed
    /// photo leaves no partial set.
    pub fn write(&self, conversion: &Conversion, photo: &Path) -> Result<(), OutputError> {
        let mut written = Vec::new();
        self.write_each(conversion, photo, &mut written)
            .map_err(|source| {
                for path in &written {
                    // Best effort: the error that matters is the one being returned.
                    let _ = std::fs::remove_file(path);
                }
                OutputError::Write {
                    photo: photo.to_path_buf(),
                    source,
                }
            })
    }

    /// Writes the depth map and its preview (when asked), then the PLY, recording each finished file.
    fn write_each(
        &self,
        conversion: &Conversion,
        photo: &Path,
        written: &mut Vec<PathBuf>,
    ) -> Result<(), WriteError> {
        if let Some(d) = &self.depth {
            write_depth_npz(&d.npz, conversion.depth(), conversion.focal().focal_px())?;
            written.push(d.npz.clone());
            write_preview(&d.preview, conversion.depth())?;
            written.push(d.preview.clone());
        }
        let options = PlyWriteOptions {
            encoding: self.encoding,
            comments: ply_comments(conversion, photo),
        };
        write_ply_file(&self.ply, conversion.cloud(), &options)?;
        written.push(self.ply.clone());
        Ok(())
    }
}

/// The provenance comments of the PLY header, one `key=value …` line each (the writer sanitises them to
/// single ASCII lines and adds its own `frame=… units=metres` line).
pub fn ply_comments(conversion: &Conversion, photo: &Path) -> Vec<String> {
    vec![
        format!("generator=depth2ply {}", env!("CARGO_PKG_VERSION")),
        format!("source_image={}", photo.display()),
        format!("depth_source={}", conversion.depth_origin()),
        intrinsics_comment(conversion.intrinsics()),
        focal_comment(&conversion.focal()),
        format!(
            "camera=pinhole pixel_centres=integer depth_type=z frame={} (opencv: +X right +Y down +Z forward; \
             opengl: +X right +Y up -Z forward)",
            conversion.cloud().frame.as_str()
        ),
        format!("points {}", conversion.report()),
    ]
}

fn ensure_parent(path: &Path) -> Result<(), OutputError> {
    let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) else {
        return Ok(());
    };
    // `create_dir_all` would only say "Not a directory": name the file in the way instead.
    if let Some(file) = parent.ancestors().find(|a| a.is_file()) {
        return Err(OutputError::ParentIsFile {
            file: file.to_path_buf(),
            output: path.to_path_buf(),
        });
    }
    std::fs::create_dir_all(parent).map_err(|source| OutputError::CreateFolder {
        folder: parent.to_path_buf(),
        source,
    })
}

/// Writes the turbo-coloured inverse-depth preview (Apple's normalisation) as a PNG, atomically.
fn write_preview(path: &Path, depth: &DepthMap) -> Result<(), AtomicWriteError> {
    let preview = inverse_depth_preview(depth);
    write_atomically(path, |w| {
        preview
            .write_with_encoder(PngEncoder::new(w))
            .map_err(std::io::Error::other)
    })
}

/// A best-effort canonical form of a path that may not exist yet (then only its folder is
/// canonicalised), for telling whether two paths name the same file.
pub fn canonical_path(path: &Path) -> PathBuf {
    if let Ok(full) = path.canonicalize() {
        return full;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        (_, Some(name)) => std::env::current_dir()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}
