//! Depth maps: z-depth in metres on the image grid.

use crate::ImageSize;

/// A depth map: **z-depth in metres** (distance along the optical axis, not along the ray), `f32`,
/// row-major `H × W`.
///
/// A pixel is *valid* when its depth is finite and `> 0`; zero, negative, NaN and infinite depths mark
/// missing measurements and are never projected.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthMap {
    size: ImageSize,
    depth_m: Vec<f32>,
}

/// A depth buffer whose length does not match its size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("depth buffer has {len} values but a {size} map needs {}", size.pixel_count())]
pub struct DepthSizeMismatch {
    /// The declared size.
    pub size: ImageSize,
    /// The buffer length.
    pub len: usize,
}

impl DepthMap {
    /// Wraps a row-major buffer of z-depths in metres.
    pub fn new(size: ImageSize, depth_m: Vec<f32>) -> Result<Self, DepthSizeMismatch> {
        if depth_m.len() != size.pixel_count() {
            return Err(DepthSizeMismatch {
                size,
                len: depth_m.len(),
            });
        }
        Ok(Self { size, depth_m })
    }

    /// Size of the map.
    pub fn size(&self) -> ImageSize {
        self.size
    }

    /// The row-major depths in metres.
    pub fn as_slice(&self) -> &[f32] {
        &self.depth_m
    }

    /// Mutable row-major depths in metres.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.depth_m
    }

    /// Takes the buffer back.
    pub fn into_vec(self) -> Vec<f32> {
        self.depth_m
    }

    /// Depth at column `u`, row `v`, or `None` outside the image.
    pub fn get(&self, u: u32, v: u32) -> Option<f32> {
        (u < self.size.width && v < self.size.height)
            .then(|| self.depth_m[v as usize * self.size.width as usize + u as usize])
    }

    /// Whether a depth value is usable: finite and strictly positive.
    #[inline]
    pub fn is_valid_depth(z: f32) -> bool {
        z.is_finite() && z > 0.0
    }

    /// Number of valid pixels.
    pub fn valid_count(&self) -> usize {
        self.depth_m.iter().filter(|&&z| Self::is_valid_depth(z)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_and_access() {
        let d = DepthMap::new(
            ImageSize::new(3, 2),
            vec![1.0, 0.0, -1.0, f32::NAN, f32::INFINITY, 2.5],
        )
        .unwrap();
        assert_eq!(d.valid_count(), 2);
        assert_eq!(d.get(2, 1), Some(2.5));
        assert_eq!(d.get(3, 0), None);
        assert!(DepthMap::new(ImageSize::new(3, 2), vec![1.0; 5]).is_err());
    }
}
