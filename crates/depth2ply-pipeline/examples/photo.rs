//! A photo → Depth Pro → a metric cloud, with the CLI's camera rules (EXIF focal length, else the
//! network's), written as a PLY next to the photo. The weights are found like the CLI finds them
//! (`DEPTH2PLY_WEIGHTS`, the cache, a download with the `hub` feature), or given as a second argument.
//!
//! ```sh
//! cargo run --release -p depth2ply-pipeline --features hub --example photo -- photo.jpg [depth_pro.pt]
//! ```

use std::path::PathBuf;

use depth2ply_pipeline::{DepthSource, LazyDepthPro, NetworkSettings, OutputOptions, OutputSet, Pipeline};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let photo_path = args.next().ok_or("usage: photo PHOTO [WEIGHTS]")?;
    let settings = NetworkSettings {
        weights: args.next(),
        ..NetworkSettings::default()
    };
    let mut network = LazyDepthPro::new(settings);

    let pipeline = Pipeline::new(Default::default())?;
    let photo = pipeline.open_photo(&photo_path)?;
    for warning in photo.warnings() {
        eprintln!("warning: {warning}");
    }
    let conversion = pipeline.convert(&photo, DepthSource::Network(&mut network))?;
    let focal = conversion.focal();
    println!(
        "{} points, focal {:.1} px ({})",
        conversion.cloud().len(),
        focal.focal_px(),
        focal.source()
    );

    let outputs = OutputSet::new(photo_path.with_extension("ply"), &OutputOptions::default());
    outputs.prepare(&[&photo_path])?;
    outputs.write(&conversion, &photo_path)?;
    println!("wrote {}", outputs.ply().display());
    Ok(())
}
