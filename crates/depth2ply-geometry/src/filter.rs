//! Point filters and the per-reason drop report.
//!
//! Two kinds of filters, applied in this order by [`crate::backproject::cloud_from_depth`]:
//!
//! 1. **Grid filters**, one O(1) test per pixel on the organised depth map (cheap, O(N) in total):
//!    invalid depth → depth clip range → flying pixel (3×3 relative depth range, MoGe's rule) →
//!    no normal → grazing angle. Each pixel lands in the first bucket whose test it fails.
//! 2. **Cloud filters** on the unorganised cloud (k-d tree or sort based, opt-in):
//!    [`voxel_downsample`] then [`remove_statistical_outliers`]. SOR runs after down-sampling because a
//!    k-NN query per point costs ~55 s on a 12 MP cloud on 2 cores (see `pointcloud_notes.md` §3).
//!
//! Every input pixel is counted exactly once in a [`DropReport`].

use std::fmt;
use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

use crate::cloud::PointCloud;
use depth2ply_core::DepthMap;

/// MoGe's default relative depth tolerance for flying pixels (`moge infer --threshold`, 0.04).
pub const DEFAULT_FLYING_PIXEL_RTOL: f32 = 0.04;

/// Suggested grazing-angle threshold in degrees when the cut is enabled (no standard exists; 75–85° are
/// the usual choices, and 85° removed every synthetic flying pixel in `pointcloud_notes.md` §3).
pub const DEFAULT_MAX_VIEW_ANGLE_DEG: f32 = 85.0;

/// Largest voxel index per axis: keys are packed into 21 bits per axis of a `u64`.
const VOXEL_AXIS_LIMIT: u64 = 1 << 21;

/// Which filters to run, with their thresholds. Units are in the field names; `None` disables a filter.
///
/// The default is what the `depth2ply` CLI does without flags: drop invalid depths, drop flying pixels
/// with MoGe's rule at `rtol = 0.04`, drop points without a normal, no clipping, no grazing cut, no
/// down-sampling and no statistical outlier removal. [`FilterConfig::none`] keeps every valid pixel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterConfig {
    /// Smallest kept z-depth in metres (inclusive). Default `0.0` (no near clip).
    pub min_depth_m: f32,
    /// Largest kept z-depth in metres (inclusive). Default `f32::INFINITY` (no far clip).
    pub max_depth_m: f32,
    /// Flying-pixel tolerance (unitless, relative to depth). A pixel with depth `z` is dropped when
    /// `max − min > rtol · z` over the valid depths of its 3×3 window (itself included). `z` is the
    /// pixel's **own** depth, as in MoGe's `utils3d.depth_map_edge`, so both sides of a true occlusion
    /// edge are dropped when the step is larger than `rtol` times their depth. Default
    /// `Some(`[`DEFAULT_FLYING_PIXEL_RTOL`]`)`; `None` disables the test.
    pub flying_pixel_rtol: Option<f32>,
    /// Grazing-angle cut in degrees, in `(0, 90]`: drop a point whose normal makes an angle larger than
    /// this with the direction back to the camera (the surface is seen edge-on). Uses the grid normals.
    /// Default `None` (off): it also removes real surfaces seen obliquely, e.g. a floor near the
    /// horizon. [`DEFAULT_MAX_VIEW_ANGLE_DEG`] is the suggested value when enabled.
    pub max_view_angle_deg: Option<f32>,
    /// Drop points for which no normal can be estimated: on the grid, no usable neighbour horizontally
    /// or vertically (see [`crate::normals::NormalConfig`]); with k-NN normals, a collinear or
    /// coincident neighbourhood. When `false` such points keep a normal pointing straight back at the
    /// camera (as does the rare grid pixel whose two tangents are parallel). Only matters when normals
    /// are attached or the grazing cut is on. Default `true`.
    pub drop_without_normal: bool,
    /// Voxel down-sampling edge length in metres: points in the same voxel are replaced by their
    /// average position, average colour and renormalised summed normal. Default `None` (off).
    pub voxel_size_m: Option<f32>,
    /// Statistical outlier removal (Open3D's definition), run after down-sampling. Default `None` (off).
    pub statistical_outlier: Option<StatisticalOutlierConfig>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            min_depth_m: 0.0,
            max_depth_m: f32::INFINITY,
            flying_pixel_rtol: Some(DEFAULT_FLYING_PIXEL_RTOL),
            max_view_angle_deg: None,
            drop_without_normal: true,
            voxel_size_m: None,
            statistical_outlier: None,
        }
    }
}

impl FilterConfig {
    /// No filtering at all: every pixel with a valid depth becomes a point (`--no-filter`).
    pub const fn none() -> Self {
        Self {
            min_depth_m: 0.0,
            max_depth_m: f32::INFINITY,
            flying_pixel_rtol: None,
            max_view_angle_deg: None,
            drop_without_normal: false,
            voxel_size_m: None,
            statistical_outlier: None,
        }
    }

    /// Checks every threshold; returns the first invalid one.
    pub fn validate(&self) -> Result<(), FilterError> {
        let invalid = |name: &'static str, value: f64, expected: &'static str| {
            Err(FilterError::InvalidConfig {
                name,
                value,
                expected,
            })
        };
        if !(self.min_depth_m >= 0.0 && self.min_depth_m.is_finite()) {
            return invalid("min_depth_m", self.min_depth_m.into(), "a finite depth ≥ 0 m");
        }
        if self.max_depth_m.is_nan() || self.max_depth_m < self.min_depth_m {
            return invalid(
                "max_depth_m",
                self.max_depth_m.into(),
                "a depth ≥ min_depth_m (∞ for no far clip)",
            );
        }
        if let Some(rtol) = self.flying_pixel_rtol {
            if rtol.is_nan() || rtol <= 0.0 {
                return invalid(
                    "flying_pixel_rtol",
                    rtol.into(),
                    "a relative tolerance > 0 (e.g. 0.04)",
                );
            }
        }
        if let Some(angle) = self.max_view_angle_deg {
            if !(angle > 0.0 && angle <= 90.0) {
                return invalid(
                    "max_view_angle_deg",
                    angle.into(),
                    "an angle in (0°, 90°] (e.g. 85)",
                );
            }
        }
        if let Some(size) = self.voxel_size_m {
            validate_voxel_size(size)?;
        }
        if let Some(sor) = self.statistical_outlier {
            sor.validate()?;
        }
        Ok(())
    }
}

/// Statistical outlier removal as in Open3D's `remove_statistical_outlier(nb_neighbors, std_ratio)`.
///
/// For each point, `d̄ᵢ` is the mean Euclidean distance (metres) to its `neighbors` nearest points,
/// **the point itself included** (distance 0), as Open3D counts it. With `μ`, `σ` the mean and the
/// Bessel-corrected standard deviation of all `d̄ᵢ`, a point is kept when `d̄ᵢ ≤ μ + std_ratio · σ`.
/// Differences from Open3D: equality keeps the point, and points whose neighbours all coincide
/// (`d̄ᵢ = 0`) are kept (Open3D drops them).
///
/// The threshold is global, so on a depth cloud (spacing ∝ z/f) it removes far points first; run it on
/// down-sampled clouds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatisticalOutlierConfig {
    /// Neighbourhood size `k`, self included, ≥ 2. Default 20 (Open3D tutorial).
    pub neighbors: usize,
    /// Threshold in standard deviations, > 0. Default 2.0 (Open3D tutorial).
    pub std_ratio: f32,
}

impl Default for StatisticalOutlierConfig {
    fn default() -> Self {
        Self {
            neighbors: 20,
            std_ratio: 2.0,
        }
    }
}

impl StatisticalOutlierConfig {
    /// Checks `neighbors ≥ 2` and a finite `std_ratio > 0`.
    pub fn validate(&self) -> Result<(), FilterError> {
        if self.neighbors < 2 {
            return Err(FilterError::InvalidConfig {
                name: "statistical_outlier.neighbors",
                value: self.neighbors as f64,
                expected: "at least 2 (the point itself is one of them)",
            });
        }
        if !(self.std_ratio > 0.0 && self.std_ratio.is_finite()) {
            return Err(FilterError::InvalidConfig {
                name: "statistical_outlier.std_ratio",
                value: self.std_ratio.into(),
                expected: "a finite number of standard deviations > 0 (e.g. 2.0)",
            });
        }
        Ok(())
    }
}

/// Why a pixel did not become an output point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Depth zero, negative, NaN or infinite.
    InvalidDepth,
    /// Outside `[min_depth_m, max_depth_m]`.
    OutOfRange,
    /// Flying pixel: large relative depth range in the 3×3 window.
    FlyingPixel,
    /// No normal could be estimated and [`FilterConfig::drop_without_normal`] is set.
    NoNormal,
    /// Surface seen at more than [`FilterConfig::max_view_angle_deg`].
    GrazingAngle,
    /// Removed by statistical outlier removal.
    StatisticalOutlier,
    /// Merged into another point by voxel down-sampling.
    VoxelMerged,
}

impl DropReason {
    /// Every reason, in pipeline order.
    pub const ALL: [DropReason; 7] = [
        DropReason::InvalidDepth,
        DropReason::OutOfRange,
        DropReason::FlyingPixel,
        DropReason::NoNormal,
        DropReason::GrazingAngle,
        DropReason::StatisticalOutlier,
        DropReason::VoxelMerged,
    ];

    /// Stable kebab-case name for logs and JSON.
    pub const fn as_str(&self) -> &'static str {
        match self {
            DropReason::InvalidDepth => "invalid-depth",
            DropReason::OutOfRange => "out-of-range",
            DropReason::FlyingPixel => "flying-pixel",
            DropReason::NoNormal => "no-normal",
            DropReason::GrazingAngle => "grazing-angle",
            DropReason::StatisticalOutlier => "statistical-outlier",
            DropReason::VoxelMerged => "voxel-merged",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many input pixels ended where. Every pixel is counted exactly once, so
/// [`DropReport::total`] equals `W · H` of the depth map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropReport {
    /// Pixels with depth zero, negative, NaN or infinite.
    pub invalid_depth: usize,
    /// Pixels outside the depth clip range.
    pub out_of_range: usize,
    /// Flying pixels (3×3 relative depth range above the tolerance).
    pub flying_pixel: usize,
    /// Points without an estimable normal (when dropping those is enabled).
    pub no_normal: usize,
    /// Points on surfaces seen edge-on (grazing-angle cut).
    pub grazing_angle: usize,
    /// Points removed by statistical outlier removal.
    pub statistical_outlier: usize,
    /// Points merged away by voxel down-sampling (input points minus occupied voxels).
    pub voxel_merged: usize,
    /// Points in the output cloud.
    pub kept: usize,
}

impl DropReport {
    /// Count for one reason.
    pub const fn count(&self, reason: DropReason) -> usize {
        match reason {
            DropReason::InvalidDepth => self.invalid_depth,
            DropReason::OutOfRange => self.out_of_range,
            DropReason::FlyingPixel => self.flying_pixel,
            DropReason::NoNormal => self.no_normal,
            DropReason::GrazingAngle => self.grazing_angle,
            DropReason::StatisticalOutlier => self.statistical_outlier,
            DropReason::VoxelMerged => self.voxel_merged,
        }
    }

    /// Total dropped, all reasons together.
    pub fn dropped(&self) -> usize {
        DropReason::ALL.iter().map(|&r| self.count(r)).sum()
    }

    /// Dropped plus kept: the number of input pixels.
    pub fn total(&self) -> usize {
        self.dropped() + self.kept
    }
}

impl fmt::Display for DropReport {
    /// `kept 9 of 12 (invalid-depth 2, flying-pixel 1)`; reasons with a zero count are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kept {} of {}", self.kept, self.total())?;
        let mut first = true;
        for reason in DropReason::ALL {
            let n = self.count(reason);
            if n > 0 {
                f.write_str(if first { " (" } else { ", " })?;
                write!(f, "{reason} {n}")?;
                first = false;
            }
        }
        if !first {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Invalid filter settings or an unusable cloud.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A threshold outside its allowed range.
    #[error("invalid filter setting {name} = {value}: expected {expected}")]
    InvalidConfig {
        /// The setting, as named in the config struct.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// A normals or colours vector whose length differs from the number of positions.
    #[error(
        "point cloud has {positions} positions but {len} {attribute}: every attribute needs exactly one \
         entry per point"
    )]
    AttributeLengthMismatch {
        /// `"normals"` or `"colors"`.
        attribute: &'static str,
        /// Its length.
        len: usize,
        /// The number of positions.
        positions: usize,
    },
    /// A NaN or infinite coordinate, which no spatial index can place.
    #[error("point {index} has a non-finite coordinate; remove NaN/infinite points before filtering")]
    NonFinitePosition {
        /// Index of the first offending point.
        index: usize,
    },
    /// The cloud spans more than 2²¹ voxels along one axis.
    #[error(
        "voxel size {voxel_size_m} m is too small for a cloud spanning {extent_m} m: at most 2097152 \
         voxels per axis are supported; use a larger voxel size or clip the depth range"
    )]
    VoxelGridTooFine {
        /// The requested voxel edge in metres.
        voxel_size_m: f32,
        /// The largest extent of the cloud's bounding box in metres.
        extent_m: f32,
    },
    /// The k-d tree could not be built (more than 2³² points).
    #[error("could not build the k-d tree for neighbour queries: {0}")]
    KdTree(#[from] kiddo::kd_tree::ConstructionError),
}

pub(crate) fn validate_voxel_size(size: f32) -> Result<(), FilterError> {
    if size > 0.0 && size.is_finite() {
        Ok(())
    } else {
        Err(FilterError::InvalidConfig {
            name: "voxel_size_m",
            value: size.into(),
            expected: "a finite edge length > 0 m (e.g. 0.01)",
        })
    }
}

/// Checks attribute lengths and finiteness of a cloud before a spatial filter.
pub(crate) fn validate_cloud(cloud: &PointCloud) -> Result<(), FilterError> {
    let positions = cloud.positions.len();
    if let Some(normals) = &cloud.normals {
        if normals.len() != positions {
            return Err(FilterError::AttributeLengthMismatch {
                attribute: "normals",
                len: normals.len(),
                positions,
            });
        }
    }
    if let Some(colors) = &cloud.colors {
        if colors.len() != positions {
            return Err(FilterError::AttributeLengthMismatch {
                attribute: "colors",
                len: colors.len(),
                positions,
            });
        }
    }
    if let Some(index) = cloud
        .positions
        .iter()
        .position(|p| !p.coords.iter().all(|c| c.is_finite()))
    {
        return Err(FilterError::NonFinitePosition { index });
    }
    Ok(())
}

/// Keeps the points whose `keep` flag is set, in order, with their attributes. `keep.len()` must equal
/// the number of points (checked by callers).
pub(crate) fn retain_points(cloud: &mut PointCloud, keep: &[bool]) {
    fn retain<T>(values: &mut Vec<T>, keep: &[bool]) {
        let mut flags = keep.iter();
        values.retain(|_| flags.next().copied().unwrap_or(false));
    }
    retain(&mut cloud.positions, keep);
    if let Some(normals) = cloud.normals.as_mut() {
        retain(normals, keep);
    }
    if let Some(colors) = cloud.colors.as_mut() {
        retain(colors, keep);
    }
}

/// Copies positions into the `[f32; 3]` layout kiddo builds from.
pub(crate) fn kd_points(positions: &[Point3<f32>]) -> Vec<[f32; 3]> {
    positions.par_iter().map(|p| [p.x, p.y, p.z]).collect()
}

/// Whether a pixel is a flying pixel by MoGe's rule, given the range of its 3×3 window.
#[inline]
pub(crate) fn is_flying(window_min: f32, window_max: f32, z: f32, rtol: f32) -> bool {
    window_max - window_min > rtol * z
}

/// Vertical min/max of valid depths over rows `v−1..=v+1` for every column, the first half of a
/// separable 3×3 min/max (the second half is a 3-wide horizontal pass done by the caller).
/// Invalid depths count as missing (`+∞` for the min, `−∞` for the max).
pub(crate) fn column_min_max(
    depth: &[f32],
    width: usize,
    height: usize,
    v: usize,
    col_min: &mut [f32],
    col_max: &mut [f32],
) {
    let rows = v.saturating_sub(1)..=(v + 1).min(height - 1);
    col_min.fill(f32::INFINITY);
    col_max.fill(f32::NEG_INFINITY);
    for r in rows {
        let row = &depth[r * width..(r + 1) * width];
        for ((&z, lo), hi) in row.iter().zip(col_min.iter_mut()).zip(col_max.iter_mut()) {
            if DepthMap::is_valid_depth(z) {
                *lo = lo.min(z);
                *hi = hi.max(z);
            }
        }
    }
}

/// Min and max over columns `u−1..=u+1` of the per-column extrema.
#[inline]
pub(crate) fn window_min_max(col_min: &[f32], col_max: &[f32], u: usize) -> (f32, f32) {
    let lo = u.saturating_sub(1);
    let hi = (u + 1).min(col_min.len() - 1);
    let mut min = f32::INFINITY;
    let mut max = f32::NEG_INFINITY;
    for c in lo..=hi {
        min = min.min(col_min[c]);
        max = max.max(col_max[c]);
    }
    (min, max)
}

/// The flying-pixel mask of a depth map: `true` where a **valid** pixel's 3×3 window of valid depths
/// spans more than `rtol` times its own depth (MoGe's `depth_map_edge(depth, rtol)` with invalid pixels
/// skipped and the image border using only real neighbours). Invalid pixels are `false`.
///
/// Returns one flag per pixel, row-major. The pipeline computes the same test on the fly; this function
/// is for callers who want the mask itself.
///
/// ```
/// use depth2ply_geometry::{filter::flying_pixel_mask, DepthMap, ImageSize};
/// // A 4×1 step from 1 m to 2 m: the two pixels at the step are flagged, the outer ones are not.
/// let depth = DepthMap::new(ImageSize::new(4, 1), vec![1.0, 1.0, 2.0, 2.0]).unwrap();
/// assert_eq!(flying_pixel_mask(&depth, 0.04)?, vec![false, true, true, false]);
/// # Ok::<(), depth2ply_geometry::filter::FilterError>(())
/// ```
pub fn flying_pixel_mask(depth: &DepthMap, rtol: f32) -> Result<Vec<bool>, FilterError> {
    FilterConfig {
        flying_pixel_rtol: Some(rtol),
        ..FilterConfig::none()
    }
    .validate()?;
    let size = depth.size();
    let (width, height) = (size.width as usize, size.height as usize);
    let mut mask = vec![false; size.pixel_count()];
    if width == 0 || height == 0 {
        return Ok(mask);
    }
    let z_all = depth.as_slice();
    mask.par_chunks_mut(width).enumerate().for_each_init(
        || (vec![0.0f32; width], vec![0.0f32; width]),
        |(col_min, col_max), (v, row)| {
            column_min_max(z_all, width, height, v, col_min, col_max);
            for (u, flag) in row.iter_mut().enumerate() {
                let z = z_all[v * width + u];
                if DepthMap::is_valid_depth(z) {
                    let (lo, hi) = window_min_max(col_min, col_max, u);
                    *flag = is_flying(lo, hi, z, rtol);
                }
            }
        },
    );
    Ok(mask)
}

/// Voxel down-sampling (Open3D's `voxel_down_sample`): the grid is anchored at
/// `min_bound − voxel_size_m / 2`; each occupied voxel becomes one point with the mean position, the
/// rounded mean colour and the renormalised sum of normals (a zero sum falls back to the direction back
/// to the camera). Output points are ordered by voxel index. The cloud's frame is kept.
///
/// Returns the down-sampled cloud; `input.len() − output.len()` points were merged.
///
/// ```
/// use depth2ply_geometry::{filter::voxel_downsample, nalgebra::Point3, PointCloud};
/// let cloud = PointCloud {
///     positions: vec![Point3::new(0.0, 0.0, 1.0), Point3::new(0.001, 0.0, 1.0), Point3::new(1.0, 0.0, 1.0)],
///     ..PointCloud::default()
/// };
/// let down = voxel_downsample(&cloud, 0.1)?;
/// assert_eq!(down.len(), 2);
/// assert!((down.positions[0].x - 0.0005).abs() < 1e-6);
/// # Ok::<(), depth2ply_geometry::filter::FilterError>(())
/// ```
pub fn voxel_downsample(cloud: &PointCloud, voxel_size_m: f32) -> Result<PointCloud, FilterError> {
    validate_voxel_size(voxel_size_m)?;
    validate_cloud(cloud)?;
    let positions = &cloud.positions;
    if positions.is_empty() {
        return Ok(PointCloud {
            frame: cloud.frame,
            ..cloud.clone()
        });
    }
    let (min, max) = positions
        .par_iter()
        .fold(
            || ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]),
            |(mut lo, mut hi), p| {
                for a in 0..3 {
                    lo[a] = lo[a].min(p[a]);
                    hi[a] = hi[a].max(p[a]);
                }
                (lo, hi)
            },
        )
        .reduce(
            || ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]),
            |(lo1, hi1), (lo2, hi2)| {
                (
                    [lo1[0].min(lo2[0]), lo1[1].min(lo2[1]), lo1[2].min(lo2[2])],
                    [hi1[0].max(hi2[0]), hi1[1].max(hi2[1]), hi1[2].max(hi2[2])],
                )
            },
        );
    let size = f64::from(voxel_size_m);
    let extent = (0..3)
        .map(|a| f64::from(max[a]) - f64::from(min[a]))
        .fold(0.0, f64::max);
    // Anchored at min − size/2, so the largest index is floor(extent/size + 0.5).
    if (extent / size + 0.5).floor() >= VOXEL_AXIS_LIMIT as f64 {
        return Err(FilterError::VoxelGridTooFine {
            voxel_size_m,
            extent_m: extent as f32,
        });
    }
    let origin = [0, 1, 2].map(|a| f64::from(min[a]) - size / 2.0);
    let mut keyed: Vec<(u64, u32)> = positions
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let index = |a: usize| ((f64::from(p[a]) - origin[a]) / size).floor() as u64;
            (index(0) | (index(1) << 21) | (index(2) << 42), i as u32)
        })
        .collect();
    keyed.par_sort_unstable();
    let mut starts: Vec<usize> = Vec::new();
    for (i, w) in keyed.iter().enumerate() {
        if i == 0 || keyed[i - 1].0 != w.0 {
            starts.push(i);
        }
    }
    starts.push(keyed.len());
    let runs: Vec<&[(u64, u32)]> = starts.windows(2).map(|w| &keyed[w[0]..w[1]]).collect();

    let out_positions: Vec<Point3<f32>> = runs
        .par_iter()
        .map(|run| {
            let mut sum = [0.0f64; 3];
            for &(_, i) in run.iter() {
                let p = &positions[i as usize];
                for a in 0..3 {
                    sum[a] += f64::from(p[a]);
                }
            }
            let n = run.len() as f64;
            Point3::new((sum[0] / n) as f32, (sum[1] / n) as f32, (sum[2] / n) as f32)
        })
        .collect();
    let out_normals = cloud.normals.as_ref().map(|normals| {
        runs.par_iter()
            .zip(out_positions.par_iter())
            .map(|(run, centre)| {
                let sum: Vector3<f32> = run.iter().map(|&(_, i)| normals[i as usize]).sum();
                sum.try_normalize(f32::MIN_POSITIVE)
                    .unwrap_or_else(|| towards_camera(centre))
            })
            .collect()
    });
    let out_colors = cloud.colors.as_ref().map(|colors| {
        runs.par_iter()
            .map(|run| {
                let mut sum = [0u64; 3];
                for &(_, i) in run.iter() {
                    for (s, &c) in sum.iter_mut().zip(colors[i as usize].iter()) {
                        *s += u64::from(c);
                    }
                }
                let n = run.len() as u64;
                sum.map(|s| ((s + n / 2) / n) as u8)
            })
            .collect()
    });
    Ok(PointCloud {
        positions: out_positions,
        normals: out_normals,
        colors: out_colors,
        frame: cloud.frame,
    })
}

/// Unit vector from `p` back to the camera at the origin (`−p / |p|`), or `−Z` at the origin itself.
/// Valid in both frames: the OpenCV → OpenGL change is a rotation about the camera centre.
#[inline]
pub(crate) fn towards_camera(p: &Point3<f32>) -> Vector3<f32> {
    (-p.coords)
        .try_normalize(f32::MIN_POSITIVE)
        .unwrap_or_else(|| Vector3::new(0.0, 0.0, -1.0))
}

/// Per-point statistic of [`remove_statistical_outliers`]: the mean distance (metres) to the `k`
/// nearest points, self included.
fn mean_knn_distances(positions: &[Point3<f32>], neighbors: NonZeroUsize) -> Result<Vec<f64>, FilterError> {
    let points = kd_points(positions);
    let tree: ImmutableKdTree<f32, 3> = ImmutableKdTree::new_from_slice_parallel(&points)?;
    Ok(points
        .par_iter()
        .map(|p| {
            let found = tree
                .query(p)
                .nearest_n::<SquaredEuclidean<f32>>(neighbors)
                .execute();
            let sum: f64 = found.iter().map(|r| f64::from(r.distance).sqrt()).sum();
            sum / found.len().max(1) as f64
        })
        .collect())
}

/// Statistical outlier removal (see [`StatisticalOutlierConfig`] for the exact rule), in place.
/// Attributes are kept in step with the positions. Returns the number of removed points.
/// Clouds with fewer than 2 points are left alone (no spread to measure).
///
/// ```
/// use depth2ply_geometry::filter::{remove_statistical_outliers, StatisticalOutlierConfig};
/// use depth2ply_geometry::{nalgebra::Point3, PointCloud};
/// // A 10×10 grid with 1 cm spacing plus one point 1 m away.
/// let mut positions: Vec<_> =
///     (0..100).map(|i| Point3::new((i % 10) as f32 * 0.01, (i / 10) as f32 * 0.01, 1.0)).collect();
/// positions.push(Point3::new(0.05, 0.05, 2.0));
/// let mut cloud = PointCloud { positions, ..PointCloud::default() };
/// let removed = remove_statistical_outliers(&mut cloud, &StatisticalOutlierConfig::default())?;
/// assert_eq!(removed, 1);
/// assert!(cloud.positions.iter().all(|p| p.z == 1.0));
/// # Ok::<(), depth2ply_geometry::filter::FilterError>(())
/// ```
pub fn remove_statistical_outliers(
    cloud: &mut PointCloud,
    config: &StatisticalOutlierConfig,
) -> Result<usize, FilterError> {
    config.validate()?;
    validate_cloud(cloud)?;
    let n = cloud.positions.len();
    let Some(neighbors) = NonZeroUsize::new(config.neighbors) else {
        return Ok(0);
    };
    if n < 2 {
        return Ok(0);
    }
    let means = mean_knn_distances(&cloud.positions, neighbors)?;
    let mean = means.par_iter().sum::<f64>() / n as f64;
    let var = means.par_iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (n - 1) as f64;
    let threshold = mean + f64::from(config.std_ratio) * var.sqrt();
    let keep: Vec<bool> = means.par_iter().map(|&d| d <= threshold).collect();
    let removed = keep.iter().filter(|&&k| !k).count();
    if removed > 0 {
        retain_points(cloud, &keep);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::ImageSize;

    #[test]
    fn defaults_are_documented_values() {
        let f = FilterConfig::default();
        assert_eq!(f.flying_pixel_rtol, Some(0.04));
        assert_eq!(f.max_view_angle_deg, None);
        assert_eq!(f.voxel_size_m, None);
        assert_eq!(f.statistical_outlier, None);
        assert_eq!(
            StatisticalOutlierConfig::default(),
            StatisticalOutlierConfig {
                neighbors: 20,
                std_ratio: 2.0
            }
        );
        assert!(f.validate().is_ok());
        assert!(FilterConfig::none().validate().is_ok());
    }

    #[test]
    fn rejects_bad_thresholds() {
        let bad = [
            FilterConfig {
                min_depth_m: -1.0,
                ..FilterConfig::default()
            },
            FilterConfig {
                min_depth_m: 2.0,
                max_depth_m: 1.0,
                ..FilterConfig::default()
            },
            FilterConfig {
                max_depth_m: f32::NAN,
                ..FilterConfig::default()
            },
            FilterConfig {
                flying_pixel_rtol: Some(0.0),
                ..FilterConfig::default()
            },
            FilterConfig {
                flying_pixel_rtol: Some(f32::NAN),
                ..FilterConfig::default()
            },
            FilterConfig {
                max_view_angle_deg: Some(95.0),
                ..FilterConfig::default()
            },
            FilterConfig {
                voxel_size_m: Some(0.0),
                ..FilterConfig::default()
            },
            FilterConfig {
                statistical_outlier: Some(StatisticalOutlierConfig {
                    neighbors: 1,
                    std_ratio: 2.0,
                }),
                ..FilterConfig::default()
            },
        ];
        for config in bad {
            let err = config.validate().unwrap_err();
            assert!(matches!(err, FilterError::InvalidConfig { .. }), "{config:?}");
        }
    }

    #[test]
    fn report_sums_and_display() {
        let r = DropReport {
            invalid_depth: 2,
            flying_pixel: 1,
            kept: 9,
            ..DropReport::default()
        };
        assert_eq!(r.dropped(), 3);
        assert_eq!(r.total(), 12);
        assert_eq!(r.to_string(), "kept 9 of 12 (invalid-depth 2, flying-pixel 1)");
    }

    #[test]
    fn flying_mask_step() {
        // 5×2 map (non-square), a 1 m → 2 m step between columns 1 and 2 in both rows. Both sides of
        // the step are flagged (ranges 1 m > 0.04·1 m and > 0.04·2 m); the border columns see only
        // their own side (the window is clipped at the image border).
        let depth = DepthMap::new(
            ImageSize::new(5, 2),
            vec![1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 2.0],
        )
        .unwrap();
        let mask = flying_pixel_mask(&depth, 0.04).unwrap();
        let row = [false, true, true, false, false];
        assert_eq!(mask[..5], row);
        assert_eq!(mask[5..], row);
        // A step of 3 % stays below the tolerance.
        let depth = DepthMap::new(ImageSize::new(3, 1), vec![1.0, 1.0, 1.03]).unwrap();
        assert_eq!(
            flying_pixel_mask(&depth, 0.04).unwrap(),
            vec![false, false, false]
        );
    }

    #[test]
    fn flying_mask_skips_invalid_neighbours() {
        // 4×3 plane at 1 m with a NaN, a zero and a negative depth: invalid pixels are skipped, so no
        // valid neighbour is flagged (MoGe's +inf convention would erode them) and invalid ones are false.
        let mut z = vec![1.0f32; 12];
        z[5] = f32::NAN;
        z[6] = 0.0;
        z[11] = -3.0;
        let depth = DepthMap::new(ImageSize::new(4, 3), z).unwrap();
        assert!(flying_pixel_mask(&depth, 0.04).unwrap().iter().all(|&f| !f));
    }

    #[test]
    fn voxel_counts_and_colours() {
        let cloud = PointCloud {
            positions: vec![
                Point3::new(0.0, 0.0, 1.0),
                Point3::new(0.04, 0.0, 1.0),
                Point3::new(0.5, 0.0, 1.0),
                Point3::new(0.5, 0.5, 1.0),
            ],
            normals: Some(vec![Vector3::new(0.0, 0.0, -1.0); 4]),
            colors: Some(vec![[0, 0, 0], [255, 101, 10], [1, 2, 3], [4, 5, 6]]),
            ..PointCloud::default()
        };
        let down = voxel_downsample(&cloud, 0.1).unwrap();
        assert_eq!(down.len(), 3);
        let colors = down.colors.unwrap();
        assert_eq!(colors[0], [128, 51, 5]);
        assert!((down.positions[0].x - 0.02).abs() < 1e-7);
        assert_eq!(down.normals.unwrap()[0], Vector3::new(0.0, 0.0, -1.0));
    }

    #[test]
    fn voxel_grid_limit_is_an_error() {
        let cloud = PointCloud {
            positions: vec![Point3::new(0.0, 0.0, 1.0), Point3::new(3000.0, 0.0, 1.0)],
            ..PointCloud::default()
        };
        assert!(matches!(
            voxel_downsample(&cloud, 0.001),
            Err(FilterError::VoxelGridTooFine { .. })
        ));
    }

    #[test]
    fn attribute_mismatch_is_an_error() {
        let mut cloud = PointCloud {
            positions: vec![Point3::new(0.0, 0.0, 1.0); 3],
            colors: Some(vec![[0, 0, 0]; 2]),
            ..PointCloud::default()
        };
        assert!(matches!(
            remove_statistical_outliers(&mut cloud, &StatisticalOutlierConfig::default()),
            Err(FilterError::AttributeLengthMismatch {
                attribute: "colors",
                len: 2,
                positions: 3
            })
        ));
    }
}
