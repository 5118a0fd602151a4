//! Back-projection of a depth map into a filtered, coloured point cloud with normals.
//!
//! [`cloud_from_depth`] is the one entry point. Pixel `(u, v)` (integer pixel centres) with z-depth
//! `z` metres becomes `((u − cx)·z/fx, (v − cy)·z/fy, z)` in the OpenCV camera frame, the formula of
//! Open3D's `create_from_depth_image`. Work is O(W·H), parallel over rows, with no per-pixel
//! allocation:
//!
//! 1. one pass classifies every pixel (kept, or the first grid filter it fails) into a byte mask;
//! 2. the output vectors are allocated once at their final length and each row writes its points,
//!    normals and colours at its own offset;
//! 3. optional cloud filters (voxel down-sampling, then statistical outlier removal), optional k-NN
//!    normals, and the change to the requested [`Frame`].

use image::RgbImage;
use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

use crate::camera::{CameraError, ImageSize, Intrinsics};
use crate::cloud::{Frame, PointCloud};
use crate::filter::{
    column_min_max, is_flying, remove_statistical_outliers, retain_points, towards_camera, voxel_downsample,
    window_min_max, DropReport, FilterConfig, FilterError,
};
use crate::normals::{grid_normal, has_tangent_pair, knn_normals, NormalConfig, NormalError};
use depth2ply_core::DepthMap;

/// Everything [`cloud_from_depth`] can be asked to do. `Default` is the CLI's default behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CloudConfig {
    /// Frame of the output positions and normals. Default [`Frame::OpenCv`]; [`Frame::OpenGl`] negates
    /// `y` and `z` of both (a 180° rotation about X, so normals still face the camera).
    pub frame: Frame,
    /// Attach unit normals oriented towards the camera. Default `true`.
    pub estimate_normals: bool,
    /// How normals are estimated (also used by the grazing-angle cut when normals are not attached).
    pub normals: NormalConfig,
    /// Which points to drop.
    pub filter: FilterConfig,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            frame: Frame::OpenCv,
            estimate_normals: true,
            normals: NormalConfig::default(),
            filter: FilterConfig::default(),
        }
    }
}

impl CloudConfig {
    /// Checks every threshold of the filter and normal settings.
    pub fn validate(&self) -> Result<(), CloudError> {
        self.filter.validate()?;
        self.normals.validate()?;
        Ok(())
    }
}

/// Why a depth map could not be turned into a cloud.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The depth map and the intrinsics describe different image sizes.
    #[error(
        "depth map is {depth} but the intrinsics are for a {intrinsics} image; scale the intrinsics to the \
         depth map (Intrinsics::scaled_to) or resize the depth map"
    )]
    DepthIntrinsicsSizeMismatch {
        /// Size of the depth map.
        depth: ImageSize,
        /// Size the intrinsics were made for.
        intrinsics: ImageSize,
    },
    /// The colour image and the depth map differ in size.
    #[error(
        "colour image is {color} but the depth map is {depth}; resize the colour image to the depth map \
         (or the depth map to the image) first"
    )]
    ColorSizeMismatch {
        /// Size of the colour image.
        color: ImageSize,
        /// Size of the depth map.
        depth: ImageSize,
    },
    /// Not a single pixel has a finite, positive depth.
    #[error("depth map ({size}) has no valid pixel: every depth is zero, negative, NaN or infinite")]
    NoValidDepth {
        /// Size of the depth map.
        size: ImageSize,
    },
    /// Invalid focal length or principal point.
    #[error(transparent)]
    Camera(#[from] CameraError),
    /// Invalid filter settings or a failed cloud filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Invalid normal settings or failed normal estimation.
    #[error(transparent)]
    Normal(#[from] NormalError),
}

/// Per-column and per-row ray factors `(u − cx)/fx` and `(v − cy)/fy`: a point is `(a_u·z, b_v·z, z)`.
/// Computed in `f64` and rounded once, so each coordinate carries at most two `f32` roundings.
pub(crate) struct PixelRays {
    x_per_z: Vec<f32>,
    y_per_z: Vec<f32>,
}

impl PixelRays {
    pub(crate) fn new(k: &Intrinsics) -> Self {
        let x_per_z = (0..k.size.width)
            .map(|u| ((f64::from(u) - k.cx_px) / k.fx_px) as f32)
            .collect();
        let y_per_z = (0..k.size.height)
            .map(|v| ((f64::from(v) - k.cy_px) / k.fy_px) as f32)
            .collect();
        Self { x_per_z, y_per_z }
    }

    #[inline]
    pub(crate) fn width(&self) -> usize {
        self.x_per_z.len()
    }

    #[inline]
    pub(crate) fn height(&self) -> usize {
        self.y_per_z.len()
    }

    /// `(u − cx)/fx` of column `u`.
    #[inline]
    pub(crate) fn x_per_z(&self, u: usize) -> f32 {
        self.x_per_z[u]
    }

    /// `(v − cy)/fy` of row `v`.
    #[inline]
    pub(crate) fn y_per_z(&self, v: usize) -> f32 {
        self.y_per_z[v]
    }

    /// Camera-frame (OpenCV) point of pixel `(u, v)` at z-depth `z` metres.
    #[inline]
    pub(crate) fn point(&self, u: usize, v: usize, z: f32) -> Point3<f32> {
        Point3::new(self.x_per_z[u] * z, self.y_per_z[v] * z, z)
    }
}

// Pixel classes of the first pass; the index into the per-row counters.
const KEEP: u8 = 0;
const INVALID: u8 = 1;
const OUT_OF_RANGE: u8 = 2;
const FLYING: u8 = 3;
const NO_NORMAL: u8 = 4;
const GRAZING: u8 = 5;
const CLASSES: usize = 6;

/// Read-only inputs of the two grid passes.
struct GridPass<'a> {
    rays: &'a PixelRays,
    depth: &'a [f32],
    min_depth_m: f32,
    max_depth_m: f32,
    flying_rtol: Option<f32>,
    edge_rtol: f32,
    /// Drop pixels without a usable neighbour pair for the grid normal (only when grid normals are
    /// attached or the grazing cut needs them, and `drop_without_normal` is set).
    drop_without_tangents: bool,
    /// `cos(max_view_angle)`: a point is dropped when `n · (−p̂)` is below it.
    min_view_cos: Option<f32>,
}

impl GridPass<'_> {
    /// Pass 1 for row `v`: writes one class per pixel, returns the count per class.
    fn classify_row(
        &self,
        v: usize,
        classes: &mut [u8],
        scratch: &mut (Vec<f32>, Vec<f32>),
    ) -> [usize; CLASSES] {
        let width = self.rays.width();
        let (col_min, col_max) = scratch;
        if self.flying_rtol.is_some() {
            column_min_max(self.depth, width, self.rays.height(), v, col_min, col_max);
        }
        let row = &self.depth[v * width..(v + 1) * width];
        let mut counts = [0usize; CLASSES];
        for (u, (&z, class)) in row.iter().zip(classes.iter_mut()).enumerate() {
            *class = self.classify(u, v, z, col_min, col_max);
            counts[usize::from(*class)] += 1;
        }
        counts
    }

    #[inline]
    fn classify(&self, u: usize, v: usize, z: f32, col_min: &[f32], col_max: &[f32]) -> u8 {
        if !DepthMap::is_valid_depth(z) {
            return INVALID;
        }
        if z < self.min_depth_m || z > self.max_depth_m {
            return OUT_OF_RANGE;
        }
        if let Some(rtol) = self.flying_rtol {
            let (lo, hi) = window_min_max(col_min, col_max, u);
            if is_flying(lo, hi, z, rtol) {
                return FLYING;
            }
        }
        if self.drop_without_tangents && !has_tangent_pair(self.rays, self.depth, u, v, z, self.edge_rtol) {
            return NO_NORMAL;
        }
        if let Some(min_cos) = self.min_view_cos {
            // No normal (kept because drop_without_normal is off, or a degenerate cross product): the
            // fallback normal faces the camera and always passes.
            if let Some(n) = grid_normal(self.rays, self.depth, u, v, z, self.edge_rtol) {
                if n.dot(&towards_camera(&self.rays.point(u, v, z))) < min_cos {
                    return GRAZING;
                }
            }
        }
        KEEP
    }

    /// Pass 2 for row `v`: writes the kept points of the row into its output slices.
    fn fill_row(&self, v: usize, classes: &[u8], out: RowOutput<'_>, colors: Option<&[u8]>) {
        let width = self.rays.width();
        let row = &self.depth[v * width..(v + 1) * width];
        let RowOutput {
            positions,
            mut normals,
            mut colors_out,
        } = out;
        let mut k = 0;
        for (u, (&z, &class)) in row.iter().zip(classes).enumerate() {
            if class != KEEP {
                continue;
            }
            let p = self.rays.point(u, v, z);
            positions[k] = p;
            if let Some(normals) = normals.as_deref_mut() {
                normals[k] = grid_normal(self.rays, self.depth, u, v, z, self.edge_rtol)
                    .unwrap_or_else(|| towards_camera(&p));
            }
            if let (Some(out), Some(rgb)) = (colors_out.as_deref_mut(), colors) {
                let i = 3 * (v * width + u);
                out[k] = [rgb[i], rgb[i + 1], rgb[i + 2]];
            }
            k += 1;
        }
    }
}

/// The part of each output vector that belongs to one image row.
struct RowOutput<'a> {
    positions: &'a mut [Point3<f32>],
    normals: Option<&'a mut [Vector3<f32>]>,
    colors_out: Option<&'a mut [[u8; 3]]>,
}

/// A vector of `len` copies of `value`, initialised in parallel (a 12 MP cloud is ~330 MB of output,
/// which one thread would take tens of milliseconds to zero).
fn filled_vec<T: Clone + Send + Sync>(len: usize, value: T) -> Vec<T> {
    let mut out = Vec::with_capacity(len);
    out.par_extend(rayon::iter::repeat_n(value, len));
    out
}

/// Splits the output vectors into consecutive per-row slices of `counts[v]` entries.
fn split_rows<'a>(
    mut positions: &'a mut [Point3<f32>],
    mut normals: Option<&'a mut [Vector3<f32>]>,
    mut colors: Option<&'a mut [[u8; 3]]>,
    counts: &[usize],
) -> Vec<RowOutput<'a>> {
    let mut rows = Vec::with_capacity(counts.len());
    for &count in counts {
        let (p, rest) = std::mem::take(&mut positions).split_at_mut(count);
        positions = rest;
        let n = normals.take().map(|s| {
            let (head, tail) = s.split_at_mut(count);
            normals = Some(tail);
            head
        });
        let c = colors.take().map(|s| {
            let (head, tail) = s.split_at_mut(count);
            colors = Some(tail);
            head
        });
        rows.push(RowOutput {
            positions: p,
            normals: n,
            colors_out: c,
        });
    }
    rows
}

/// Turns a z-depth map (metres) into a point cloud: back-projection with `intrinsics` (OpenCV frame,
/// integer pixel centres), optional colours from `colors` (same size as the depth map), normals and
/// filters as set in `config`.
///
/// Returns the cloud (in `config.frame`) and a [`DropReport`] in which every pixel is counted once:
/// `report.total() == W · H`. Points are in row-major pixel order unless voxel down-sampling reorders
/// them. A cloud left empty by the filters is not an error.
///
/// # Errors
/// [`CloudError::DepthIntrinsicsSizeMismatch`], [`CloudError::ColorSizeMismatch`],
/// [`CloudError::NoValidDepth`] when no pixel has a finite positive depth, and invalid settings.
///
/// ```
/// use depth2ply_geometry::backproject::{cloud_from_depth, CloudConfig};
/// use depth2ply_geometry::{DepthMap, ImageSize, Intrinsics};
/// let size = ImageSize::new(4, 3);
/// let k = Intrinsics::from_focal_px(size, 2.0)?; // principal point (1.5, 1.0)
/// let mut z = vec![2.0f32; 12];
/// z[0] = 0.0; // no depth
/// let depth = DepthMap::new(size, z)?;
/// let (cloud, report) = cloud_from_depth(&depth, &k, None, &CloudConfig::default())?;
/// assert_eq!((cloud.len(), report.invalid_depth, report.total()), (11, 1, 12));
/// // Pixel (3, 2) at 2 m: x = (3 − 1.5)·2/2, y = (2 − 1)·2/2.
/// assert_eq!(cloud.positions[10].coords.as_slice(), &[1.5, 1.0, 2.0]);
/// assert!(cloud.normals.unwrap().iter().all(|n| n.z < -0.999));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cloud_from_depth(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    colors: Option<&RgbImage>,
    config: &CloudConfig,
) -> Result<(PointCloud, DropReport), CloudError> {
    // The fields are public, so check them again rather than trust the constructor.
    let intrinsics = &Intrinsics::new(
        intrinsics.size,
        intrinsics.fx_px,
        intrinsics.fy_px,
        intrinsics.cx_px,
        intrinsics.cy_px,
    )?;
    config.validate()?;
    let size = depth.size();
    if size != intrinsics.size {
        return Err(CloudError::DepthIntrinsicsSizeMismatch {
            depth: size,
            intrinsics: intrinsics.size,
        });
    }
    let pixel_count = size.pixel_count();
    let color_bytes = match colors {
        Some(image) => {
            let color = ImageSize::new(image.width(), image.height());
            match image.as_raw().get(..3 * pixel_count) {
                Some(bytes) if color == size => Some(bytes),
                _ => return Err(CloudError::ColorSizeMismatch { color, depth: size }),
            }
        }
        None => None,
    };

    let filter = &config.filter;
    let grid_normals_out = config.estimate_normals && config.normals.knn.is_none();
    let rays = PixelRays::new(intrinsics);
    let pass = GridPass {
        rays: &rays,
        depth: depth.as_slice(),
        min_depth_m: filter.min_depth_m,
        max_depth_m: filter.max_depth_m,
        flying_rtol: filter.flying_pixel_rtol,
        edge_rtol: config.normals.edge_rtol,
        drop_without_tangents: filter.drop_without_normal
            && (grid_normals_out || filter.max_view_angle_deg.is_some()),
        min_view_cos: filter.max_view_angle_deg.map(|deg| deg.to_radians().cos()),
    };
    let width = size.width as usize;

    // Pass 1: classify every pixel.
    let mut classes = vec![KEEP; pixel_count];
    let row_counts: Vec<[usize; CLASSES]> = classes
        .par_chunks_mut(width)
        .enumerate()
        .map_init(
            || (vec![0.0f32; width], vec![0.0f32; width]),
            |scratch, (v, row)| pass.classify_row(v, row, scratch),
        )
        .collect();
    let mut totals = [0usize; CLASSES];
    for counts in &row_counts {
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
    }
    if totals[usize::from(INVALID)] == pixel_count {
        return Err(CloudError::NoValidDepth { size });
    }
    let mut report = DropReport {
        invalid_depth: totals[usize::from(INVALID)],
        out_of_range: totals[usize::from(OUT_OF_RANGE)],
        flying_pixel: totals[usize::from(FLYING)],
        no_normal: totals[usize::from(NO_NORMAL)],
        grazing_angle: totals[usize::from(GRAZING)],
        ..DropReport::default()
    };

    // Pass 2: write the kept points once into vectors of their final length.
    let kept = totals[usize::from(KEEP)];
    let kept_per_row: Vec<usize> = row_counts.iter().map(|c| c[usize::from(KEEP)]).collect();
    let mut positions = filled_vec(kept, Point3::origin());
    let mut normals = grid_normals_out.then(|| filled_vec(kept, Vector3::zeros()));
    let mut colors_out = color_bytes.map(|_| filled_vec(kept, [0u8; 3]));
    let rows = split_rows(
        &mut positions,
        normals.as_deref_mut(),
        colors_out.as_deref_mut(),
        &kept_per_row,
    );
    rows.into_par_iter().enumerate().for_each(|(v, out)| {
        pass.fill_row(v, &classes[v * width..(v + 1) * width], out, color_bytes);
    });
    drop(classes);
    let mut cloud = PointCloud {
        positions,
        normals,
        colors: colors_out,
        frame: Frame::OpenCv,
    };

    // Cloud filters, in the OpenCV frame so that the voxel grid does not depend on the output frame.
    if let Some(voxel_size_m) = filter.voxel_size_m {
        let before = cloud.len();
        cloud = voxel_downsample(&cloud, voxel_size_m)?;
        report.voxel_merged = before - cloud.len();
    }
    if let Some(sor) = &filter.statistical_outlier {
        report.statistical_outlier = remove_statistical_outliers(&mut cloud, sor)?;
    }
    if let (true, Some(knn)) = (config.estimate_normals, &config.normals.knn) {
        let estimated = knn_normals(&cloud.positions, knn)?;
        if filter.drop_without_normal {
            let keep: Vec<bool> = estimated.iter().map(Option::is_some).collect();
            let missing = keep.iter().filter(|&&k| !k).count();
            if missing > 0 {
                retain_points(&mut cloud, &keep);
                report.no_normal += missing;
            }
            cloud.normals = Some(estimated.into_iter().flatten().collect());
        } else {
            cloud.normals = Some(
                estimated
                    .into_iter()
                    .zip(&cloud.positions)
                    .map(|(n, p)| n.unwrap_or_else(|| towards_camera(p)))
                    .collect(),
            );
        }
    }
    cloud.convert_frame(config.frame);
    report.kept = cloud.len();
    debug_assert_eq!(report.total(), pixel_count);
    Ok((cloud, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::StatisticalOutlierConfig;
    use crate::normals::KnnNormalConfig;

    fn plane(size: ImageSize, z: f32) -> (DepthMap, Intrinsics) {
        (
            DepthMap::new(size, vec![z; size.pixel_count()]).unwrap(),
            Intrinsics::from_focal_px(size, 10.0).unwrap(),
        )
    }

    #[test]
    fn errors_name_both_sizes() {
        let (depth, _) = plane(ImageSize::new(5, 3), 1.0);
        let k = Intrinsics::from_focal_px(ImageSize::new(3, 5), 10.0).unwrap();
        let err = cloud_from_depth(&depth, &k, None, &CloudConfig::default()).unwrap_err();
        assert!(
            err.to_string().contains("5×3") && err.to_string().contains("3×5"),
            "{err}"
        );

        let (depth, k) = plane(ImageSize::new(5, 3), 1.0);
        let image = RgbImage::new(5, 4);
        let err = cloud_from_depth(&depth, &k, Some(&image), &CloudConfig::default()).unwrap_err();
        assert!(matches!(err, CloudError::ColorSizeMismatch { .. }));
        assert!(
            err.to_string().contains("5×4") && err.to_string().contains("5×3"),
            "{err}"
        );

        let depth = DepthMap::new(ImageSize::new(5, 3), vec![f32::NAN; 15]).unwrap();
        let err = cloud_from_depth(&depth, &k, None, &CloudConfig::default()).unwrap_err();
        assert!(matches!(err, CloudError::NoValidDepth { .. }));

        let bad = Intrinsics { fx_px: 0.0, ..k };
        let (depth, _) = plane(ImageSize::new(5, 3), 1.0);
        assert!(matches!(
            cloud_from_depth(&depth, &bad, None, &CloudConfig::default()),
            Err(CloudError::Camera(_))
        ));
        let config = CloudConfig {
            filter: FilterConfig {
                voxel_size_m: Some(-1.0),
                ..FilterConfig::default()
            },
            ..CloudConfig::default()
        };
        assert!(matches!(
            cloud_from_depth(&depth, &k, None, &config),
            Err(CloudError::Filter(_))
        ));
    }

    #[test]
    fn clip_range_is_inclusive_and_counted() {
        let size = ImageSize::new(4, 2);
        let depth = DepthMap::new(size, vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0, -1.0, 1.2]).unwrap();
        let k = Intrinsics::from_focal_px(size, 10.0).unwrap();
        let config = CloudConfig {
            estimate_normals: false,
            filter: FilterConfig {
                min_depth_m: 1.0,
                max_depth_m: 2.0,
                ..FilterConfig::none()
            },
            ..CloudConfig::default()
        };
        let (cloud, report) = cloud_from_depth(&depth, &k, None, &config).unwrap();
        let z: Vec<f32> = cloud.positions.iter().map(|p| p.z).collect();
        assert_eq!(z, vec![1.0, 1.5, 2.0, 1.2]);
        assert_eq!(
            (report.invalid_depth, report.out_of_range, report.kept),
            (1, 3, 4)
        );
    }

    #[test]
    fn isolated_pixel_is_dropped_or_gets_camera_facing_normal() {
        // 5×4 with a single valid pixel: no neighbour pair.
        let size = ImageSize::new(5, 4);
        let mut z = vec![0.0f32; 20];
        z[7] = 2.0;
        let depth = DepthMap::new(size, z).unwrap();
        let k = Intrinsics::from_focal_px(size, 10.0).unwrap();
        let (cloud, report) = cloud_from_depth(&depth, &k, None, &CloudConfig::default()).unwrap();
        assert_eq!((cloud.len(), report.no_normal, report.invalid_depth), (0, 1, 19));
        let keep_all = CloudConfig {
            filter: FilterConfig::none(),
            ..CloudConfig::default()
        };
        let (cloud, report) = cloud_from_depth(&depth, &k, None, &keep_all).unwrap();
        assert_eq!((cloud.len(), report.no_normal), (1, 0));
        let n = cloud.normals.unwrap()[0];
        let p = cloud.positions[0];
        assert!((n + p.coords.normalize()).norm() < 1e-6);
    }

    #[test]
    fn cloud_filters_are_counted() {
        let (depth, k) = plane(ImageSize::new(30, 20), 2.0);
        let config = CloudConfig {
            normals: NormalConfig {
                knn: Some(KnnNormalConfig::default()),
                ..NormalConfig::default()
            },
            filter: FilterConfig {
                voxel_size_m: Some(0.5),
                statistical_outlier: Some(StatisticalOutlierConfig::default()),
                ..FilterConfig::default()
            },
            ..CloudConfig::default()
        };
        let (cloud, report) = cloud_from_depth(&depth, &k, None, &config).unwrap();
        // The 600 pixels span x ∈ [−2.9, 2.9] m, y ∈ [−1.9, 1.9] m at 0.2 m spacing. With 0.5 m voxels
        // anchored at min − 0.25 m the indices are floor((x + 3.15)/0.5) ∈ 0..=12 and
        // floor((y + 2.15)/0.5) ∈ 0..=8, every one occupied (0.4 index steps): 13 × 9 voxels.
        assert_eq!(report.voxel_merged, 600 - 13 * 9);
        assert_eq!(report.total(), 600);
        assert_eq!(cloud.len(), report.kept);
        assert_eq!(cloud.normals.as_ref().unwrap().len(), cloud.len());
        for n in cloud.normals.unwrap() {
            assert!((n - Vector3::new(0.0, 0.0, -1.0)).norm() < 1e-4);
        }
    }
}
