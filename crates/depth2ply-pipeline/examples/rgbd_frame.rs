//! Robotics-style use: an RGB-D frame already in memory (as a camera driver or a ROS callback hands it
//! over) and the sensor's intrinsics → a filtered, coloured cloud with normals. No files, no network.
//!
//! ```sh
//! cargo run --release -p depth2ply-pipeline --example rgbd_frame
//! ```
//!
//! The frame is made up here (a wall 2 m away with a box in front of it, 640×480, PrimeSense
//! intrinsics); in a robot it comes from the sensor.

use depth2ply_pipeline::geometry::{cloud_from_depth, CloudConfig, DepthMap, ImageSize, Intrinsics};
use image::{Rgb, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (depth, color) = sensor_frame()?;
    // fx, fy, cx, cy in pixels for this image size; OpenCV frame, z-depth in metres.
    let intrinsics = Intrinsics::new(depth.size(), 525.0, 525.0, 319.5, 239.5)?;
    // Default: camera-facing normals, flying pixels at the box's outline removed.
    let (cloud, report) = cloud_from_depth(&depth, &intrinsics, Some(&color), &CloudConfig::default())?;
    println!("{} points ({report})", cloud.len());
    let nearest = cloud.positions.iter().map(|p| p.z).fold(f32::INFINITY, f32::min);
    println!(
        "nearest point {nearest:.3} m; normals: {}",
        cloud.normals.is_some()
    );
    Ok(())
}

/// A stand-in for the sensor: z-depth in metres (row-major) and the matching colour image.
fn sensor_frame() -> Result<(DepthMap, RgbImage), Box<dyn std::error::Error>> {
    let size = ImageSize::new(640, 480);
    let in_box = |u: u32, v: u32| (200..440).contains(&u) && (150..330).contains(&v);
    let depth_m = (0..size.height)
        .flat_map(|v| (0..size.width).map(move |u| if in_box(u, v) { 1.2 } else { 2.0 }))
        .collect();
    let color = RgbImage::from_fn(size.width, size.height, |u, v| {
        if in_box(u, v) {
            Rgb([200, 60, 40])
        } else {
            Rgb([180, 180, 170])
        }
    });
    Ok((DepthMap::new(size, depth_m)?, color))
}
