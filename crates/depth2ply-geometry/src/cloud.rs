//! Point clouds: positions, optional normals and colours, and the frame they are expressed in.
//!
//! Back-projection lives in [`crate::backproject`], normals in [`crate::normals`], filters in
//! [`crate::filter`].

use nalgebra::{Point3, Vector3};
use rayon::prelude::*;

/// A coloured point cloud, struct-of-arrays so that each attribute can be written without copying.
///
/// Positions are in metres in the frame recorded in [`PointCloud::frame`]. When present, `normals` and
/// `colors` have exactly one entry per position.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PointCloud {
    /// Point positions in metres.
    pub positions: Vec<Point3<f32>>,
    /// Unit normals, oriented towards the camera, if estimated.
    pub normals: Option<Vec<Vector3<f32>>>,
    /// 8-bit sRGB colours, if known.
    pub colors: Option<Vec<[u8; 3]>>,
    /// The coordinate frame of positions and normals.
    pub frame: Frame,
}

/// Camera coordinate frame of a point cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Frame {
    /// OpenCV: +X right, +Y down, +Z forward (the default).
    #[default]
    OpenCv,
    /// OpenGL: +X right, +Y up, −Z forward (`y` and `z` of the OpenCV frame negated).
    OpenGl,
}

impl Frame {
    /// Stable lower-case name (`"opencv"` or `"opengl"`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Frame::OpenCv => "opencv",
            Frame::OpenGl => "opengl",
        }
    }
}

impl PointCloud {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the cloud has no points.
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Re-expresses positions and normals in `frame` and records it. OpenCV ↔ OpenGL negates `y` and `z`
    /// (a 180° rotation about X, its own inverse), so normals that faced the camera still do.
    ///
    /// ```
    /// use depth2ply_geometry::{nalgebra::Point3, Frame, PointCloud};
    /// let mut cloud = PointCloud { positions: vec![Point3::new(1.0, 2.0, 3.0)], ..PointCloud::default() };
    /// cloud.convert_frame(Frame::OpenGl);
    /// assert_eq!(cloud.positions[0], Point3::new(1.0, -2.0, -3.0));
    /// assert_eq!(cloud.frame, Frame::OpenGl);
    /// ```
    pub fn convert_frame(&mut self, frame: Frame) {
        if self.frame == frame {
            return;
        }
        self.positions.par_iter_mut().for_each(|p| {
            p.y = -p.y;
            p.z = -p.z;
        });
        if let Some(normals) = self.normals.as_mut() {
            normals.par_iter_mut().for_each(|n| {
                n.y = -n.y;
                n.z = -n.z;
            });
        }
        self.frame = frame;
    }
}
