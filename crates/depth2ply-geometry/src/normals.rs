//! Surface normals: from the depth grid (fast, O(N)) or from k nearest neighbours (PCA, for clouds that
//! lost their grid, e.g. after voxel down-sampling).
//!
//! All normals are unit length and **oriented towards the camera**: `n · p < 0` for a point `p` in the
//! camera frame (the camera sits at the origin in both [`crate::Frame`]s).

use std::num::NonZeroUsize;

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use nalgebra::{Matrix3, Point3, SymmetricEigen, Vector3};
use rayon::prelude::*;

use crate::backproject::PixelRays;
use crate::camera::{ImageSize, Intrinsics};
use crate::filter::{kd_points, FilterError};
use depth2ply_core::DepthMap;

/// Default [`NormalConfig::edge_rtol`]: the same relative step as MoGe's flying-pixel tolerance.
pub const DEFAULT_NORMAL_EDGE_RTOL: f32 = 0.04;

/// How normals are estimated.
///
/// Grid normals (always the first step): for pixel `p` the horizontal tangent is the central
/// difference `P(u+1, v) − P(u−1, v)` of back-projected neighbours when both neighbours are usable,
/// the one-sided difference with the usable one otherwise; the same vertically; the normal is the
/// normalised cross product, flipped to face the camera. A neighbour `q` is usable when its depth is
/// valid and `|z_q − z_p| ≤ edge_rtol · z_p` (it is not across a depth edge). No usable neighbour
/// horizontally or vertically → no normal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalConfig {
    /// Largest relative depth step (unitless, relative to the pixel's own depth) to a neighbour that
    /// may be used for the tangent; ≥ 0, `f32::INFINITY` uses every valid neighbour. Default
    /// [`DEFAULT_NORMAL_EDGE_RTOL`].
    pub edge_rtol: f32,
    /// Re-estimate the normals by k-NN PCA on the final cloud (after down-sampling and outlier
    /// removal) instead of keeping the grid normals. Default `None`.
    pub knn: Option<KnnNormalConfig>,
}

impl Default for NormalConfig {
    fn default() -> Self {
        Self {
            edge_rtol: DEFAULT_NORMAL_EDGE_RTOL,
            knn: None,
        }
    }
}

impl NormalConfig {
    /// Checks `edge_rtol ≥ 0` (not NaN) and the k-NN settings.
    pub fn validate(&self) -> Result<(), NormalError> {
        if self.edge_rtol.is_nan() || self.edge_rtol < 0.0 {
            return Err(NormalError::InvalidConfig {
                name: "edge_rtol",
                value: self.edge_rtol.into(),
                expected: "a relative depth step ≥ 0 (e.g. 0.04), or infinity to use every neighbour",
            });
        }
        if let Some(knn) = self.knn {
            knn.validate()?;
        }
        Ok(())
    }
}

/// k-NN normals: the eigenvector of the smallest eigenvalue of the covariance of the `neighbors`
/// nearest points (self included), as Open3D's `estimate_normals(KDTreeSearchParamKNN(k))`, then
/// oriented towards the camera as `orient_normals_towards_camera_location([0, 0, 0])`.
/// A neighbourhood that is collinear or coincident has no normal.
///
/// Cost: about 12 s for 3 M points on 2 cores (`pointcloud_notes.md` §5); meant for down-sampled clouds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnnNormalConfig {
    /// Neighbourhood size, self included, ≥ 3. Default 30 (Open3D's `KDTreeSearchParamKNN` default).
    pub neighbors: usize,
}

impl Default for KnnNormalConfig {
    fn default() -> Self {
        Self { neighbors: 30 }
    }
}

impl KnnNormalConfig {
    /// Checks `neighbors ≥ 3`.
    pub fn validate(&self) -> Result<(), NormalError> {
        if self.neighbors < 3 {
            return Err(NormalError::InvalidConfig {
                name: "knn.neighbors",
                value: self.neighbors as f64,
                expected: "at least 3 points (a plane needs three)",
            });
        }
        Ok(())
    }
}

/// Normal estimation failures.
#[derive(Debug, thiserror::Error)]
pub enum NormalError {
    /// A setting outside its allowed range.
    #[error("invalid normal setting {name} = {value}: expected {expected}")]
    InvalidConfig {
        /// The setting, as named in the config struct.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// The depth map and the intrinsics describe different image sizes.
    #[error(
        "depth map is {depth} but the intrinsics are for a {intrinsics} image; scale the intrinsics to \
         the depth map (Intrinsics::scaled_to) first"
    )]
    SizeMismatch {
        /// Size of the depth map.
        depth: ImageSize,
        /// Size the intrinsics were made for.
        intrinsics: ImageSize,
    },
    /// Building the neighbour index failed (see [`FilterError`]).
    #[error(transparent)]
    Points(#[from] FilterError),
}

/// Whether neighbour depth `zq` may be used for the tangent at a pixel of depth `z` (valid, and not
/// across a depth edge). NaN (used for "outside the image") fails.
#[inline]
fn usable(zq: f32, z: f32, max_step: f32) -> bool {
    zq > 0.0 && zq.is_finite() && (zq - z).abs() <= max_step
}

/// Depth of the neighbour at index `j` if `inside`, else NaN; branch-free for the caller.
#[inline]
fn neighbour(depth: &[f32], inside: bool, j: usize) -> f32 {
    if inside {
        depth[j]
    } else {
        f32::NAN
    }
}

/// Whether pixel `(u, v)` with valid depth `z` has a usable neighbour both horizontally and vertically,
/// i.e. whether [`grid_normal`] can form two tangents. Cheaper than computing the normal.
#[inline]
pub(crate) fn has_tangent_pair(
    rays: &PixelRays,
    depth: &[f32],
    u: usize,
    v: usize,
    z: f32,
    edge_rtol: f32,
) -> bool {
    let (width, height) = (rays.width(), rays.height());
    let i = v * width + u;
    let max_step = edge_rtol * z;
    let ok = |inside: bool, j: usize| inside && usable(depth[j], z, max_step);
    (ok(u > 0, i.wrapping_sub(1)) || ok(u + 1 < width, i + 1))
        && (ok(v > 0, i.wrapping_sub(width)) || ok(v + 1 < height, i + width))
}

/// Grid normal of pixel `(u, v)` with valid depth `z` (see [`NormalConfig`]), or `None` when a tangent
/// is missing or the cross product degenerates. Allocation-free scalar code; called once per pixel.
#[inline]
pub(crate) fn grid_normal(
    rays: &PixelRays,
    depth: &[f32],
    u: usize,
    v: usize,
    z: f32,
    edge_rtol: f32,
) -> Option<Vector3<f32>> {
    let (width, height) = (rays.width(), rays.height());
    let i = v * width + u;
    let max_step = edge_rtol * z;
    let zl = neighbour(depth, u > 0, i.wrapping_sub(1));
    let zr = neighbour(depth, u + 1 < width, i + 1);
    let zu = neighbour(depth, v > 0, i.wrapping_sub(width));
    let zd = neighbour(depth, v + 1 < height, i + width);
    // Central difference when both neighbours are usable, one-sided (with the pixel itself) otherwise:
    // (index after, depth after, index before, depth before).
    let pair = |before: f32, after: f32, at: usize| match (
        usable(before, z, max_step),
        usable(after, z, max_step),
    ) {
        (true, true) => Some((at + 1, after, at - 1, before)),
        (false, true) => Some((at + 1, after, at, z)),
        (true, false) => Some((at, z, at - 1, before)),
        (false, false) => None,
    };
    let (ua, za, ub, zb) = pair(zl, zr, u)?;
    let (va, zc, vb, ze) = pair(zu, zd, v)?;
    let (xu, yv) = (rays.x_per_z(u), rays.y_per_z(v));
    // Tangents P(after) − P(before); P = (x_per_z·z, y_per_z·z, z).
    let tu = [
        rays.x_per_z(ua) * za - rays.x_per_z(ub) * zb,
        yv * (za - zb),
        za - zb,
    ];
    let tv = [
        xu * (zc - ze),
        rays.y_per_z(va) * zc - rays.y_per_z(vb) * ze,
        zc - ze,
    ];
    // n = t_v × t_u: (+Y) × (+X) = −Z, towards the camera for a fronto-parallel surface.
    let n = [
        tv[1] * tu[2] - tv[2] * tu[1],
        tv[2] * tu[0] - tv[0] * tu[2],
        tv[0] * tu[1] - tv[1] * tu[0],
    ];
    let len2 = n[0] * n[0] + n[1] * n[1] + n[2] * n[2];
    if !(len2 > 0.0 && len2.is_finite()) {
        return None;
    }
    // Flip to face the camera: n · p < 0 with p = (xu·z, yv·z, z), so test n · (xu, yv, 1) (z > 0).
    let facing = n[0] * xu + n[1] * yv + n[2];
    let scale = if facing > 0.0 { -1.0 } else { 1.0 } / len2.sqrt();
    Some(Vector3::new(n[0] * scale, n[1] * scale, n[2] * scale))
}

/// Grid normals of every pixel (see [`NormalConfig`]; its `knn` field is ignored), row-major, `None`
/// for invalid pixels and pixels without a usable neighbour pair. OpenCV frame.
///
/// A convenience for callers who want the normal map itself; [`crate::backproject::cloud_from_depth`]
/// computes the same normals without this full-size buffer.
///
/// ```
/// use depth2ply_geometry::{normals::{normal_map_from_depth, NormalConfig}, DepthMap, ImageSize, Intrinsics};
/// let size = ImageSize::new(6, 4);
/// let k = Intrinsics::from_focal_px(size, 5.0)?;
/// let plane = DepthMap::new(size, vec![2.0; 24])?;
/// let normals = normal_map_from_depth(&plane, &k, &NormalConfig::default())?;
/// let n = normals[9].unwrap();
/// assert!((n.z + 1.0).abs() < 1e-6); // a fronto-parallel plane faces the camera: (0, 0, −1)
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn normal_map_from_depth(
    depth: &DepthMap,
    intrinsics: &Intrinsics,
    config: &NormalConfig,
) -> Result<Vec<Option<Vector3<f32>>>, NormalError> {
    config.validate()?;
    if depth.size() != intrinsics.size {
        return Err(NormalError::SizeMismatch {
            depth: depth.size(),
            intrinsics: intrinsics.size,
        });
    }
    let rays = PixelRays::new(intrinsics);
    let width = rays.width();
    let z_all = depth.as_slice();
    let mut out = vec![None; depth.size().pixel_count()];
    if width == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(width).enumerate().for_each(|(v, row)| {
        for (u, n) in row.iter_mut().enumerate() {
            let z = z_all[v * width + u];
            if DepthMap::is_valid_depth(z) {
                *n = grid_normal(&rays, z_all, u, v, z, config.edge_rtol);
            }
        }
    });
    Ok(out)
}

/// k-NN PCA normals (see [`KnnNormalConfig`]) of arbitrary points, oriented so that `n · p < 0` (towards
/// a camera at the origin). `None` where the neighbourhood is degenerate (collinear or coincident, or
/// fewer than 3 points in the cloud).
///
/// ```
/// use depth2ply_geometry::normals::{knn_normals, KnnNormalConfig};
/// use depth2ply_geometry::nalgebra::Point3;
/// // A tilted 8×8 grid on the plane z = 2 + 0.5·x.
/// let points: Vec<_> = (0..64)
///     .map(|i| { let (x, y) = ((i % 8) as f32 * 0.1, (i / 8) as f32 * 0.1); Point3::new(x, y, 2.0 + 0.5 * x) })
///     .collect();
/// let normals = knn_normals(&points, &KnnNormalConfig { neighbors: 9 })?;
/// let expected = nalgebra::Vector3::new(0.5f32, 0.0, -1.0).normalize();
/// assert!(normals.iter().all(|n| (n.unwrap() - expected).norm() < 1e-4));
/// # Ok::<(), depth2ply_geometry::normals::NormalError>(())
/// ```
pub fn knn_normals(
    positions: &[Point3<f32>],
    config: &KnnNormalConfig,
) -> Result<Vec<Option<Vector3<f32>>>, NormalError> {
    config.validate()?;
    if let Some(index) = positions
        .iter()
        .position(|p| !p.coords.iter().all(|c| c.is_finite()))
    {
        return Err(FilterError::NonFinitePosition { index }.into());
    }
    let Some(neighbors) = NonZeroUsize::new(config.neighbors) else {
        return Ok(vec![None; positions.len()]);
    };
    if positions.len() < 3 {
        return Ok(vec![None; positions.len()]);
    }
    let points = kd_points(positions);
    let tree: ImmutableKdTree<f32, 3> =
        ImmutableKdTree::new_from_slice_parallel(&points).map_err(FilterError::from)?;
    Ok(positions
        .par_iter()
        .zip(points.par_iter())
        .map(|(p, q)| {
            let found = tree
                .query(q)
                .nearest_n::<SquaredEuclidean<f32>>(neighbors)
                .execute();
            let neighbourhood = found.iter().map(|r| &positions[r.item as usize]);
            pca_normal(neighbourhood, found.len()).map(|n| if n.dot(&p.coords) > 0.0 { -n } else { n })
        })
        .collect())
}

/// Smallest-eigenvalue eigenvector of the covariance of `count` points, unoriented; `None` if the
/// points are fewer than 3, coincident or collinear.
fn pca_normal<'a>(
    points: impl Iterator<Item = &'a Point3<f32>> + Clone,
    count: usize,
) -> Option<Vector3<f32>> {
    if count < 3 {
        return None;
    }
    let n = count as f64;
    let mean = points
        .clone()
        .fold(Vector3::<f64>::zeros(), |acc, p| acc + p.coords.cast::<f64>())
        / n;
    let cov = points.fold(Matrix3::<f64>::zeros(), |acc, p| {
        let d = p.coords.cast::<f64>() - mean;
        acc + d * d.transpose()
    }) / n;
    let eigen = SymmetricEigen::new(cov);
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| eigen.eigenvalues[a].total_cmp(&eigen.eigenvalues[b]));
    let (smallest, middle, largest) = (
        eigen.eigenvalues[order[0]],
        eigen.eigenvalues[order[1]],
        eigen.eigenvalues[order[2]],
    );
    // Collinear (two vanishing eigenvalues) or coincident points: the plane is undefined.
    if largest.is_nan() || largest <= 0.0 || middle <= 1e-12 * largest || !smallest.is_finite() {
        return None;
    }
    let normal = eigen.eigenvectors.column(order[0]).into_owned().cast::<f32>();
    normal.try_normalize(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Angle in degrees, via atan2 in f64 (acos of an f32 dot product cannot resolve angles < ~0.03°).
    fn angle_deg(a: &Vector3<f32>, b: &Vector3<f32>) -> f64 {
        let (a, b) = (a.cast::<f64>(), b.cast::<f64>());
        a.cross(&b).norm().atan2(a.dot(&b)).to_degrees()
    }

    #[test]
    fn tilted_plane_grid_normals_and_one_sided_edges() {
        // Plane n·X = d with n = (0.3, −0.2, −1)/|·|, d = −2 (so z ≈ 2 near the axis), 7×5 image.
        let size = ImageSize::new(7, 5);
        let k = Intrinsics::new(size, 60.0, 50.0, 3.2, 1.9).unwrap(); // small steps: every neighbour usable
        let n_true = Vector3::new(0.3f64, -0.2, -1.0).normalize();
        let d = -2.0 / Vector3::new(0.3f64, -0.2, -1.0).norm();
        let z: Vec<f32> = (0..35)
            .map(|i| {
                let ray = Vector3::new((i % 7) as f64 - k.cx_px, (i / 7) as f64 - k.cy_px, 0.0)
                    .component_mul(&Vector3::new(1.0 / k.fx_px, 1.0 / k.fy_px, 0.0))
                    + Vector3::z();
                (d / n_true.dot(&ray)) as f32
            })
            .collect();
        let mut depth = DepthMap::new(size, z).unwrap();
        depth.as_mut_slice()[17] = f32::NAN; // a hole in the middle forces one-sided differences around it
        let normals = normal_map_from_depth(&depth, &k, &NormalConfig::default()).unwrap();
        let expected = n_true.cast::<f32>();
        for (i, n) in normals.iter().enumerate() {
            if i == 17 {
                assert!(n.is_none());
                continue;
            }
            let n = n.unwrap();
            assert!((n.norm() - 1.0).abs() < 1e-6);
            // Chords of a plane lie in the plane, so the only error is f32 rounding.
            assert!(angle_deg(&n, &expected) < 0.01, "pixel {i}: {n:?}");
        }
    }

    #[test]
    fn no_usable_pair_gives_none() {
        // 3×2: the middle column is 1 m, its neighbours 2 m (across an edge): horizontal tangent missing.
        let size = ImageSize::new(3, 2);
        let k = Intrinsics::from_focal_px(size, 3.0).unwrap();
        let depth = DepthMap::new(size, vec![2.0, 1.0, 2.0, 2.0, 1.0, 2.0]).unwrap();
        let normals = normal_map_from_depth(&depth, &k, &NormalConfig::default()).unwrap();
        assert!(normals[1].is_none() && normals[4].is_none());
        // Using every neighbour (edge_rtol = ∞) gives normals again.
        let all = NormalConfig {
            edge_rtol: f32::INFINITY,
            knn: None,
        };
        assert!(normal_map_from_depth(&depth, &k, &all).unwrap()[1].is_some());
    }

    #[test]
    fn knn_degenerate_and_orientation() {
        let line: Vec<_> = (0..10).map(|i| Point3::new(i as f32 * 0.1, 0.0, 1.0)).collect();
        assert!(knn_normals(&line, &KnnNormalConfig { neighbors: 5 })
            .unwrap()
            .iter()
            .all(Option::is_none));
        // A plane behind the camera (z < 0) gets normals pointing towards +z, i.e. still at the origin.
        let plane: Vec<_> = (0..25)
            .map(|i| Point3::new((i % 5) as f32 * 0.1, (i / 5) as f32 * 0.1, -1.0))
            .collect();
        for n in knn_normals(&plane, &KnnNormalConfig { neighbors: 6 }).unwrap() {
            assert!((n.unwrap() - Vector3::z()).norm() < 1e-5);
        }
        assert!(KnnNormalConfig { neighbors: 2 }.validate().is_err());
    }
}
