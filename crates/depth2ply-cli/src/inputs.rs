//! Which images to process, where each output goes and which depth map belongs to which image.
//!
//! # Rules (documented in the README and tested end to end)
//! - Inputs are image files or folders. Folders are searched recursively; the images found are sorted by
//!   path. An image is a file ending in one of [`IMAGE_EXTENSIONS`] (any case), not hidden, and whose stem
//!   does not end in `.depth` (depth maps and previews that depth2ply itself writes next to images).
//! - Without `-o` each PLY goes next to its image (`a/photo.jpg` → `a/photo.ply`).
//! - With `-o` and a single image file as the only input, `-o` is the PLY path (or, if it is an existing
//!   folder, the folder to write `<stem>.ply` into). Otherwise `-o` is a folder mirroring the input tree:
//!   an image `<root>/<rel>` found in the input folder `<root>` goes to `<out>/<rel>` with extension
//!   `.ply`, an image given as a file goes to `<out>/<file name>.ply`.
//! - `--depth` is a file for a single input image. For folders or several inputs it is a folder
//!   mirroring the inputs the same way; for `<rel>/<stem>.<ext>` the first existing of
//!   [`depth_candidates`] in `<depth>/<rel>/` is used, then, when that is not the image's own folder,
//!   of [`separate_folder_depth_candidates`].
//! - Two images that would write the same PLY are an error for the second one (e.g. `x.jpg` and `x.png`
//!   in one folder).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use depth2ply_pipeline::canonical_path;

/// File extensions (lower case) treated as images when searching folders.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp"];

/// Depth-map file names tried for an image with stem `stem`, in priority order. `.npz` first: Apple's
/// `depth-pro-run` and `depth2ply --save-depth` write `<stem>.npz`; `.depth.png` last because
/// `--save-depth` also writes an 8-bit `<stem>.depth.png` preview, which is not a depth map.
pub fn depth_candidates(stem: &str) -> [String; 8] {
    [
        format!("{stem}.depth.npz"),
        format!("{stem}.npz"),
        format!("{stem}.depth.npy"),
        format!("{stem}.npy"),
        format!("{stem}.depth.pfm"),
        format!("{stem}.depth.tiff"),
        format!("{stem}.depth.tif"),
        format!("{stem}.depth.png"),
    ]
}

/// Further names tried after [`depth_candidates`] **only when the depth folder is not the image's own
/// folder**: RGB-D datasets keep `color/0001.jpg` next to `depth/0001.png` (Redwood, TUM after
/// renaming). In the image's own folder these names would be other photos.
pub fn separate_folder_depth_candidates(stem: &str) -> [String; 4] {
    [
        format!("{stem}.pfm"),
        format!("{stem}.tiff"),
        format!("{stem}.tif"),
        format!("{stem}.png"),
    ]
}

/// A mistake in how the flags combine, found after clap parsing; reported like a clap error (exit 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Where the depth of one image comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DepthInput {
    /// Estimated by the network.
    Model,
    /// Read from this file.
    File(PathBuf),
    /// `--depth` is a folder but none of the candidate names exists.
    NotFound {
        /// Every path that was tried, in order.
        searched: Vec<PathBuf>,
    },
}

/// One image to process.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The image, as given or found.
    pub image: PathBuf,
    /// The PLY to write.
    pub output_ply: PathBuf,
    /// Where its depth comes from.
    pub depth: DepthInput,
}

/// An image (or an input that could not be expanded) and what to do with it.
#[derive(Debug)]
pub struct PlannedItem {
    /// The image or input path, for error messages.
    pub path: PathBuf,
    /// The job, or why this input cannot be processed.
    pub job: Result<Job>,
}

/// What the user asked for, as far as paths are concerned.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest<'a> {
    /// Images and folders, as typed.
    pub inputs: &'a [PathBuf],
    /// `-o`.
    pub output: Option<&'a Path>,
    /// `--depth`.
    pub depth: Option<&'a Path>,
}

/// An image found in an input, with its path relative to the input root (the file name for files).
#[derive(Debug)]
struct Found {
    image: PathBuf,
    relative: PathBuf,
}

/// Expands the inputs into images (sorted within each folder) and collects per-input failures.
pub fn discover(inputs: &[PathBuf]) -> Vec<(PathBuf, Result<Vec<PathBuf>>)> {
    inputs
        .iter()
        .map(|input| {
            let images = if input.is_dir() {
                let mut images = Vec::new();
                walk(input, &mut images)
                    .map(|()| {
                        images.sort();
                        images
                    })
                    .and_then(|images| {
                        if images.is_empty() {
                            Err(anyhow!(
                                "no images found (looked recursively for .{} files): {}",
                                IMAGE_EXTENSIONS.join(" ."),
                                input.display()
                            ))
                        } else {
                            Ok(images)
                        }
                    })
            } else {
                Ok(vec![input.clone()])
            };
            (input.clone(), images)
        })
        .collect()
}

fn walk(dir: &Path, images: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list folder {}", dir.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Symlinked folders are not followed (no cycles); symlinked files are.
        let file_type = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if file_type.is_dir() {
            walk(&path, images)?;
        } else if is_image_name(&path) && path.is_file() {
            images.push(path);
        }
    }
    Ok(())
}

/// Whether a folder entry looks like an input image (see the module docs).
pub fn is_image_name(path: &Path) -> bool {
    let ext_ok = path
        .extension()
        .and_then(OsStr::to_str)
        .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    let stem_ok = path
        .file_stem()
        .and_then(OsStr::to_str)
        .is_none_or(|stem| !stem.to_ascii_lowercase().ends_with(".depth"));
    ext_ok && stem_ok
}

/// Plans every job: output paths, depth files, collisions. Flag combinations that cannot work at all are
/// a [`UsageError`]; problems of single inputs become failed [`PlannedItem`]s.
pub fn plan(request: &PlanRequest<'_>) -> Result<Vec<PlannedItem>> {
    let discovered = discover(request.inputs);
    let single_file = request.inputs.len() == 1 && !request.inputs[0].is_dir();

    let depth_is_dir = request.depth.is_some_and(Path::is_dir);
    if let Some(depth) = request.depth {
        if !depth_is_dir && !single_file {
            return Err(UsageError(format!(
                "--depth {} is a file, but there are several inputs or a folder; pass a folder of depth \
                 maps that mirrors the inputs instead",
                depth.display()
            ))
            .into());
        }
    }
    let output_is_file = match request.output {
        Some(out) if single_file => !out.is_dir(),
        Some(out) => {
            if out.extension().is_some_and(|e| e.eq_ignore_ascii_case("ply")) {
                return Err(UsageError(format!(
                    "-o {} looks like a PLY file, but there are several inputs or a folder; -o must be a \
                     folder then",
                    out.display()
                ))
                .into());
            }
            false
        }
        None => false,
    };

    let mut items = Vec::new();
    for (input, found) in discovered {
        let found = match found {
            Ok(images) => images,
            Err(err) => {
                items.push(PlannedItem {
                    path: input,
                    job: Err(err),
                });
                continue;
            }
        };
        for image in found {
            let relative = if input.is_dir() {
                image
                    .strip_prefix(&input)
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|_| image.clone())
            } else {
                image
                    .file_name()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| image.clone())
            };
            let found = Found { image, relative };
            let output_ply = match request.output {
                None => found.image.with_extension("ply"),
                Some(out) if output_is_file => out.to_path_buf(),
                Some(out) => out.join(&found.relative).with_extension("ply"),
            };
            let depth = match request.depth {
                None => DepthInput::Model,
                Some(dir) if depth_is_dir => lookup_depth(dir, &found.relative, &found.image),
                Some(file) => DepthInput::File(file.to_path_buf()),
            };
            items.push(PlannedItem {
                path: found.image.clone(),
                job: Ok(Job {
                    image: found.image,
                    output_ply,
                    depth,
                }),
            });
        }
    }
    reject_collisions(&mut items);
    Ok(items)
}

fn lookup_depth(dir: &Path, relative: &Path, image: &Path) -> DepthInput {
    let folder = relative
        .parent()
        .map(|p| dir.join(p))
        .unwrap_or_else(|| dir.to_path_buf());
    let stem = relative.file_stem().unwrap_or_default().to_string_lossy();
    let mut names = depth_candidates(&stem).to_vec();
    let image_folder = image
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let same_folder = matches!(
        (folder.canonicalize(), image_folder.canonicalize()),
        (Ok(a), Ok(b)) if a == b
    );
    if !same_folder {
        names.extend(separate_folder_depth_candidates(&stem));
    }
    let searched: Vec<PathBuf> = names.iter().map(|name| folder.join(name)).collect();
    match searched.iter().find(|p| p.is_file()) {
        Some(found) => DepthInput::File(found.clone()),
        None => DepthInput::NotFound { searched },
    }
}

fn reject_collisions(items: &mut [PlannedItem]) {
    let mut first_writer: HashMap<PathBuf, PathBuf> = HashMap::new();
    for item in items.iter_mut() {
        let Ok(job) = &item.job else { continue };
        let key = canonical_path(&job.output_ply);
        if let Some(first) = first_writer.get(&key) {
            item.job = Err(anyhow!(
                "{} would overwrite the PLY of {} (same output name); rename one of them or process them \
                 separately with -o: {}",
                item.path.display(),
                first.display(),
                job.output_ply.display()
            ));
        } else {
            first_writer.insert(key, item.path.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    #[test]
    fn image_names() {
        assert!(is_image_name(Path::new("a/b.JPG")));
        assert!(is_image_name(Path::new("b.tiff")));
        assert!(!is_image_name(Path::new("b.depth.png")));
        assert!(!is_image_name(Path::new("b.npz")));
        assert!(!is_image_name(Path::new("b")));
    }

    #[test]
    fn folder_mirrors_tree_and_finds_depth() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("in");
        for rel in [
            "b/z.jpg",
            "a.png",
            "a.depth.png",
            ".hidden.jpg",
            "notes.txt",
            "b/y.PNG",
        ] {
            touch(&root.join(rel));
        }
        let depth = tmp.path().join("depth");
        touch(&depth.join("b/z.npz"));
        touch(&depth.join("b/z.depth.png"));
        touch(&depth.join("a.depth.png"));
        let out = tmp.path().join("out");
        let inputs = [root.clone()];
        let items = plan(&PlanRequest {
            inputs: &inputs,
            output: Some(&out),
            depth: Some(&depth),
        })
        .unwrap();
        let jobs: Vec<&Job> = items.iter().map(|i| i.job.as_ref().unwrap()).collect();
        assert_eq!(
            jobs.iter().map(|j| j.image.clone()).collect::<Vec<_>>(),
            vec![root.join("a.png"), root.join("b/y.PNG"), root.join("b/z.jpg")]
        );
        assert_eq!(jobs[0].output_ply, out.join("a.ply"));
        assert_eq!(jobs[2].output_ply, out.join("b/z.ply"));
        assert_eq!(jobs[0].depth, DepthInput::File(depth.join("a.depth.png")));
        assert_eq!(jobs[2].depth, DepthInput::File(depth.join("b/z.npz")));
        assert!(matches!(&jobs[1].depth, DepthInput::NotFound { searched } if searched.len() == 12));
    }

    #[test]
    fn single_file_output_and_collisions() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("x.jpg");
        let b = tmp.path().join("x.png");
        touch(&a);
        touch(&b);
        let out = tmp.path().join("cloud.ply");
        let one = [a.clone()];
        let items = plan(&PlanRequest {
            inputs: &one,
            output: Some(&out),
            depth: None,
        })
        .unwrap();
        assert_eq!(items[0].job.as_ref().unwrap().output_ply, out);
        let two = [a.clone(), b.clone()];
        let items = plan(&PlanRequest {
            inputs: &two,
            output: None,
            depth: None,
        })
        .unwrap();
        assert_eq!(
            items[0].job.as_ref().unwrap().output_ply,
            tmp.path().join("x.ply")
        );
        assert!(format!("{:#}", items[1].job.as_ref().unwrap_err()).contains("would overwrite"));
        let err = plan(&PlanRequest {
            inputs: &two,
            output: Some(&out),
            depth: None,
        })
        .unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        let err = plan(&PlanRequest {
            inputs: &two,
            output: None,
            depth: Some(&a),
        })
        .unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
    }
}
