//! The library pipeline end to end on small non-square photos it writes itself: camera rules, depth
//! sources, errors, and all-or-nothing outputs. Expected values come from the pinhole formulas in
//! `docs/conventions.md` (a fronto-parallel plane at z metres back-projects to z everywhere).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use depth2ply_pipeline::geometry::filter::FilterConfig;
use depth2ply_pipeline::geometry::ply::read_ply;
use depth2ply_pipeline::geometry::{CloudConfig, DepthMap, FocalLength, FocalSource, ImageSize};
use depth2ply_pipeline::{
    CameraChoice, ConvertConfig, ConvertError, DepthEstimator, DepthOrigin, DepthSource, Estimate,
    NetworkError, OutputError, OutputOptions, OutputSet, Pipeline, UserCamera, Warning,
};
use image::{Rgb, RgbImage};

const SIZE: ImageSize = ImageSize::new(40, 24);

/// A PNG photo (no EXIF) of `SIZE` in `dir`.
fn photo(dir: &Path) -> PathBuf {
    let path = dir.join("frame.png");
    RgbImage::from_fn(SIZE.width, SIZE.height, |u, v| {
        Rgb([u as u8 * 6, v as u8 * 10, 128])
    })
    .save(&path)
    .unwrap();
    path
}

fn plane(z_m: f32) -> DepthMap {
    DepthMap::new(SIZE, vec![z_m; SIZE.pixel_count()]).unwrap()
}

fn pipeline(camera: Option<UserCamera>) -> Pipeline {
    Pipeline::new(ConvertConfig {
        camera,
        ..ConvertConfig::default()
    })
    .unwrap()
}

/// A stand-in network: a plane at 2 m, and a fixed predicted focal length; records what it was given.
struct FakeNetwork {
    given: Vec<Option<FocalLength>>,
}

impl DepthEstimator for FakeNetwork {
    fn estimate(&mut self, image: &RgbImage, known: Option<FocalLength>) -> Result<Estimate, NetworkError> {
        assert_eq!((image.width(), image.height()), (SIZE.width, SIZE.height));
        self.given.push(known);
        Ok(Estimate {
            depth: plane(2.0),
            focal: known.unwrap_or(FocalLength::new(30.0, FocalSource::Model).unwrap()),
            model_load_time: None,
            inference_time: std::time::Duration::ZERO,
        })
    }
}

#[test]
fn a_depth_map_in_memory_with_the_users_camera() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(Some(UserCamera::FocalPx(50.0)));
    let input = pipeline.open_photo(&path).unwrap();
    // No EXIF in a PNG, but the camera is given: nothing to warn about.
    assert!(input.warnings().is_empty(), "{:?}", input.warnings());
    let conversion = pipeline.convert(&input, DepthSource::Map(plane(3.0))).unwrap();
    assert_eq!(conversion.depth_origin(), &DepthOrigin::Memory);
    assert_eq!(
        conversion.focal(),
        FocalLength::new(50.0, FocalSource::User).unwrap()
    );
    // A plane has no flying pixels, and every pixel has a normal (one-sided differences at the border):
    // every pixel becomes a point.
    assert_eq!(conversion.cloud().len(), SIZE.pixel_count());
    assert_eq!(conversion.report().kept, SIZE.pixel_count());
    let k = conversion.intrinsics();
    assert_eq!((k.cx_px, k.cy_px), (19.5, 11.5));
    for p in &conversion.cloud().positions {
        assert!((p.z - 3.0).abs() < 1e-6);
    }
    // Pixel (0, 0): x = (0 − 19.5) · 3 / 50, y = (0 − 11.5) · 3 / 50.
    let first = conversion.cloud().positions[0];
    assert!((first.x - (0.0 - 19.5) * 3.0 / 50.0).abs() < 1e-6);
    assert!((first.y - (0.0 - 11.5) * 3.0 / 50.0).abs() < 1e-6);
}

#[test]
fn without_a_camera_a_depth_file_is_refused_and_the_network_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(None);
    let input = pipeline.open_photo(&path).unwrap();
    assert_eq!(input.camera(), CameraChoice::AskNetwork);
    // A PNG has no EXIF: that is worth a warning when the camera is not given.
    assert!(input
        .warnings()
        .iter()
        .any(|w| matches!(w, Warning::Photo(_)) && w.to_string().contains("no EXIF")));
    let err = pipeline
        .convert(&input, DepthSource::Map(plane(1.0)))
        .unwrap_err();
    assert!(matches!(err, ConvertError::NoFocalLength { .. }));
    assert!(err.to_string().ends_with(&format!(": {}", path.display())));

    let mut network = FakeNetwork { given: Vec::new() };
    let conversion = pipeline
        .convert(&input, DepthSource::Network(&mut network))
        .unwrap();
    assert_eq!(network.given, vec![None]);
    assert_eq!(conversion.focal().source(), FocalSource::Model);
    assert_eq!(conversion.intrinsics().fx_px, 30.0);
    assert_eq!(conversion.depth_origin().to_string(), "depth-pro");

    // With the user's camera the network is handed its focal length and the result keeps it.
    let pipeline = self::pipeline(Some(UserCamera::HorizontalFovDeg(90.0)));
    let input = pipeline.open_photo(&path).unwrap();
    let conversion = pipeline
        .convert(&input, DepthSource::Network(&mut network))
        .unwrap();
    // f = (W / 2) / tan(45°) = 20 px.
    let expected = FocalLength::new(20.0, FocalSource::User).unwrap();
    assert!((network.given[1].unwrap().focal_px() - 20.0).abs() < 1e-9);
    assert!((conversion.focal().focal_px() - expected.focal_px()).abs() < 1e-9);
    assert_eq!(conversion.focal().source(), FocalSource::User);
}

#[test]
fn depth_files_are_checked_against_the_photo() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(Some(UserCamera::FocalPx(50.0)));
    let input = pipeline.open_photo(&path).unwrap();

    // The transposed size: refused, naming both sizes and ending with the depth file.
    let turned = dir.path().join("turned.npz");
    let depth = DepthMap::new(SIZE.transposed(), vec![1.0; SIZE.pixel_count()]).unwrap();
    depth2ply_pipeline::geometry::depth_io::write_depth_npz(&turned, &depth, 50.0).unwrap();
    let err = pipeline.convert(&input, DepthSource::File(&turned)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("24×40") && text.contains("40×24"), "{text}");
    assert!(text.ends_with(&turned.display().to_string()), "{text}");

    let empty = dir.path().join("empty.npz");
    depth2ply_pipeline::geometry::depth_io::write_depth_npz(&empty, &plane(0.0), 50.0).unwrap();
    assert!(matches!(
        pipeline.convert(&input, DepthSource::File(&empty)),
        Err(ConvertError::NoValidDepth { .. })
    ));

    let good = dir.path().join("good.npz");
    depth2ply_pipeline::geometry::depth_io::write_depth_npz(&good, &plane(1.5), 50.0).unwrap();
    let conversion = pipeline.convert(&input, DepthSource::File(&good)).unwrap();
    assert_eq!(conversion.depth_origin(), &DepthOrigin::File(good.clone()));
    assert_eq!(conversion.depth().as_slice()[0], 1.5);
}

#[test]
fn every_point_filtered_is_a_warning_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = Pipeline::new(ConvertConfig {
        camera: Some(UserCamera::FocalPx(50.0)),
        cloud: CloudConfig {
            filter: FilterConfig {
                max_depth_m: 1.0,
                ..FilterConfig::default()
            },
            ..CloudConfig::default()
        },
        ..ConvertConfig::default()
    })
    .unwrap();
    let input = pipeline.open_photo(&path).unwrap();
    let conversion = pipeline.convert(&input, DepthSource::Map(plane(2.0))).unwrap();
    assert!(conversion.cloud().is_empty());
    assert!(matches!(conversion.warnings(), [Warning::EmptyCloud { .. }]));
    assert!(conversion.warnings()[0].to_string().ends_with("the PLY is empty"));
}

#[test]
fn outputs_are_written_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(Some(UserCamera::FocalPx(50.0)));
    let input = pipeline.open_photo(&path).unwrap();
    let conversion = pipeline.convert(&input, DepthSource::Map(plane(2.0))).unwrap();
    let options = OutputOptions {
        save_depth: true,
        ..OutputOptions::default()
    };

    let files = OutputSet::new(dir.path().join("out/sub/cloud.ply"), &options);
    assert_eq!(
        files.extras(),
        [
            dir.path().join("out/sub/cloud.npz"),
            dir.path().join("out/sub/cloud.depth.png")
        ]
    );
    files.prepare(&[&path]).unwrap();
    files.write(&conversion, &path).unwrap();
    let (cloud, comments) = read_ply(files.ply()).unwrap();
    assert_eq!(cloud.len(), conversion.cloud().len());
    assert!(
        comments.iter().any(|c| c == "focal_px=50 source=user"),
        "{comments:?}"
    );
    for extra in files.extras() {
        assert!(extra.is_file(), "{}", extra.display());
    }

    // The PLY's path is a folder: its write fails after the npz and the preview, which are removed again.
    let blocked = dir.path().join("blocked.ply");
    std::fs::create_dir(&blocked).unwrap();
    let files = OutputSet::new(blocked.clone(), &options);
    let err = files.write(&conversion, &path).unwrap_err();
    assert!(matches!(err, OutputError::Write { .. }));
    for extra in files.extras() {
        assert!(!extra.exists(), "{} was left behind", extra.display());
    }

    // An output that is an input is refused before anything is written.
    let files = OutputSet::new(dir.path().join("frame.ply"), &options);
    let npz_input = dir.path().join("frame.npz");
    assert!(matches!(
        files.prepare(&[&path, &npz_input]),
        Err(OutputError::WouldOverwriteInput { .. })
    ));
}

/// The model crate's random-weights tiny checkpoint (its parity fixtures).
fn tiny_weights() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../depth2ply-model/tests/fixtures/tiny_apple_fp16.pt")
}

#[test]
fn the_lazy_network_loads_once_and_remembers_a_failure() {
    use depth2ply_pipeline::model::DepthProConfig;
    use depth2ply_pipeline::{LazyDepthPro, NetworkEvent, NetworkSettings};

    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(None);
    let input = pipeline.open_photo(&path).unwrap();

    let mut loads = 0;
    let settings = NetworkSettings {
        weights: Some(tiny_weights()),
        config: DepthProConfig::tiny(),
        ..NetworkSettings::default()
    };
    let mut network = LazyDepthPro::new(settings).with_observer(|event| {
        if let NetworkEvent::Loading { path, .. } = event {
            assert!(path.ends_with("tiny_apple_fp16.pt"));
            loads += 1;
        }
    });
    let first = pipeline
        .convert(&input, DepthSource::Network(&mut network))
        .unwrap();
    let second = pipeline
        .convert(&input, DepthSource::Network(&mut network))
        .unwrap();
    drop(network);
    assert_eq!(loads, 1);
    assert!(first.timings().model_load.is_some() && second.timings().model_load.is_none());
    assert!(first.timings().inference.is_some());
    // No EXIF, no user camera: the FOV head's focal length, and the same result both times.
    assert_eq!(first.focal().source(), FocalSource::Model);
    assert_eq!(first.depth().size(), SIZE);
    assert_eq!(first.depth(), second.depth());
    assert_eq!(first.intrinsics().fx_px, first.focal().focal_px());

    let missing = NetworkSettings {
        weights: Some(dir.path().join("missing.pt")),
        config: DepthProConfig::tiny(),
        ..NetworkSettings::default()
    };
    let mut network = LazyDepthPro::new(missing);
    let messages: Vec<String> = (0..2)
        .map(|_| {
            let err = pipeline
                .convert(&input, DepthSource::Network(&mut network))
                .unwrap_err();
            assert!(matches!(err, ConvertError::Network { .. }));
            error_chain(&err)
        })
        .collect();
    assert!(messages[0].contains("missing.pt"), "{}", messages[0]);
    assert_eq!(messages[0], messages[1]);
}

/// The message and its causes, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// An estimator that returns the transposed size: a bug the pipeline catches for any estimator.
struct TurnedNetwork;

impl DepthEstimator for TurnedNetwork {
    fn estimate(&mut self, _: &RgbImage, known: Option<FocalLength>) -> Result<Estimate, NetworkError> {
        Ok(Estimate {
            depth: DepthMap::new(SIZE.transposed(), vec![1.0; SIZE.pixel_count()]).unwrap(),
            focal: known.unwrap(),
            model_load_time: None,
            inference_time: std::time::Duration::ZERO,
        })
    }
}

#[test]
fn an_estimate_of_the_wrong_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = photo(dir.path());
    let pipeline = pipeline(Some(UserCamera::FocalPx(50.0)));
    let input = pipeline.open_photo(&path).unwrap();
    let err = pipeline
        .convert(&input, DepthSource::Network(&mut TurnedNetwork))
        .unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.contains("internal error") && text.contains("24×40 depth map for a 40×24 image"),
        "{text}"
    );
}
