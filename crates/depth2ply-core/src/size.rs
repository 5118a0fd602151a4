//! [`ImageSize`].

use std::fmt;

/// Width and height of an image in pixels. Always named, never a bare `(w, h)` tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Number of columns.
    pub width: u32,
    /// Number of rows.
    pub height: u32,
}

impl ImageSize {
    /// A size of `width` columns by `height` rows.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Number of pixels, `width · height`.
    pub const fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// The same image turned by 90°: width and height swapped.
    pub const fn transposed(&self) -> Self {
        Self {
            width: self.height,
            height: self.width,
        }
    }

    /// Length of the diagonal in pixels, `√(W² + H²)`.
    pub fn diagonal_px(&self) -> f64 {
        (self.width as f64).hypot(self.height as f64)
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{}", self.width, self.height)
    }
}
