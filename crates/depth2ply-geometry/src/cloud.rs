//! Point clouds and back-projection of depth maps.

use nalgebra::{Point3, Vector3};

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
}
