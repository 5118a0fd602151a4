//! EXIF orientation, focal-length rules and photo loading, on images and EXIF blocks generated here.
//!
//! Sources of expected values:
//! - orientation: the EXIF 2.32 definition of tag 0x0112 (where the stored 0th row and 0th column end up
//!   on the displayed image), encoded in [`SPEC_TABLE`] independently of the implementation;
//! - focal lengths: the formulas `f35 · √(W² + H²) / √(36² + 24²)` (CIPA DC-008 diagonal rule) and
//!   `f_mm · resolution / mm_per_unit · stored_width / PixelXDimension`, written out per test;
//! - 8-bit conversion of 16-bit samples: `v / 257` for multiples of 257 (exact in any rounding).

// Fixture helpers outside `#[test]` functions panic on setup failure, which is the test failing.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};

use depth2ply_geometry::exif::{
    focal_from_exif, read_exif, read_exif_raw, ExifInfo, Orientation, MAX_PLAUSIBLE_HFOV_DEG,
};
use depth2ply_geometry::photo::{inspect_photo, load_photo, load_photo_with_limits, PhotoError, PhotoLimits};
use depth2ply_geometry::{FocalSource, ImageSize};
use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use image::{ImageEncoder, Rgb, RgbImage};

// ---------------------------------------------------------------------------------------------------
// Fixture builders
// ---------------------------------------------------------------------------------------------------

/// A stored image whose every pixel is distinct: (column, row, 10·row + column).
fn coded_image(size: ImageSize) -> RgbImage {
    RgbImage::from_fn(size.width, size.height, |c, r| {
        Rgb([c as u8, r as u8, (10 * r + c) as u8])
    })
}

fn short(tag: Tag, v: u16) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Short(vec![v]),
    }
}

fn long(tag: Tag, v: u32) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Long(vec![v]),
    }
}

fn rational(tag: Tag, num: u32, denom: u32) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Rational(vec![Rational { num, denom }]),
    }
}

fn ascii(tag: Tag, s: &str) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![s.as_bytes().to_vec()]),
    }
}

/// A bare EXIF/TIFF block (no "Exif\0\0" prefix) holding `fields`.
fn exif_block(fields: &[Field], little_endian: bool) -> Vec<u8> {
    let mut writer = Writer::new();
    for f in fields {
        writer.push_field(f);
    }
    let mut buf = Cursor::new(Vec::new());
    writer.write(&mut buf, little_endian).unwrap();
    buf.into_inner()
}

/// A JPEG of `size` with an APP1 segment `"Exif\0\0" + payload` inserted right after SOI.
fn jpeg_with_app1(size: ImageSize, payload: Option<&[u8]>) -> Vec<u8> {
    // Busy texture so that, for sizes of ~100 px, most of the file is entropy-coded data.
    let image = RgbImage::from_fn(size.width, size.height, |c, r| {
        Rgb([
            ((c * 37 + r * 11) % 256) as u8,
            ((c * c + r * 7) % 256) as u8,
            ((c ^ r) * 9 % 256) as u8,
        ])
    });
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .write_image(
            image.as_raw(),
            size.width,
            size.height,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let Some(payload) = payload else { return jpeg };
    let mut segment = vec![0xFF, 0xE1];
    let length = u16::try_from(2 + 6 + payload.len()).unwrap();
    segment.extend_from_slice(&length.to_be_bytes());
    segment.extend_from_slice(b"Exif\0\0");
    segment.extend_from_slice(payload);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn jpeg_with_exif(size: ImageSize, fields: &[Field]) -> Vec<u8> {
    jpeg_with_app1(size, Some(&exif_block(fields, false)))
}

/// An uncompressed RGB TIFF of `image` written entirely by the EXIF writer, carrying `extra` tags.
fn tiff_with_exif(image: &RgbImage, extra: &[Field]) -> Vec<u8> {
    let (w, h) = image.dimensions();
    let base = [
        long(Tag::ImageWidth, w),
        long(Tag::ImageLength, h),
        Field {
            tag: Tag::BitsPerSample,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![8, 8, 8]),
        },
        short(Tag::Compression, 1),
        short(Tag::PhotometricInterpretation, 2),
        short(Tag::SamplesPerPixel, 3),
        long(Tag::RowsPerStrip, h),
        short(Tag::PlanarConfiguration, 1),
    ];
    let strip: &[u8] = image.as_raw();
    let strips = [strip];
    let mut writer = Writer::new();
    for f in base.iter().chain(extra) {
        writer.push_field(f);
    }
    writer.set_strips(&strips, In::PRIMARY);
    let mut buf = Cursor::new(Vec::new());
    writer.write(&mut buf, true).unwrap();
    buf.into_inner()
}

/// A temporary directory holding `name` with `bytes`; keep the guard alive while using the path.
fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn orientation_thumbnail() -> Field {
    Field {
        tag: Tag::Orientation,
        ifd_num: In::THUMBNAIL,
        value: Value::Short(vec![1]),
    }
}

fn assert_close(got: f64, expected: f64) {
    assert!(
        (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "got {got}, expected {expected}"
    );
}

fn diagonal_rule(f35: f64, size: ImageSize) -> f64 {
    let (w, h) = (size.width as f64, size.height as f64);
    f35 * (w * w + h * h).sqrt() / (36.0f64 * 36.0 + 24.0 * 24.0).sqrt()
}

fn any_warning(warnings: &[String], needle: &str) -> bool {
    warnings.iter().any(|w| w.contains(needle))
}

// ---------------------------------------------------------------------------------------------------
// Orientation
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

/// EXIF 2.32, tag 0x0112: for each value, the visual position of the stored 0th row and 0th column.
const SPEC_TABLE: [(u32, Side, Side); 8] = [
    (1, Side::Top, Side::Left),
    (2, Side::Top, Side::Right),
    (3, Side::Bottom, Side::Right),
    (4, Side::Bottom, Side::Left),
    (5, Side::Left, Side::Top),
    (6, Side::Right, Side::Top),
    (7, Side::Right, Side::Bottom),
    (8, Side::Left, Side::Bottom),
];

/// Displayed position `(x, y)` of stored pixel `(c, r)` of a `w × h` stored image, derived from where the
/// stored 0th row and 0th column are displayed.
fn displayed_position(row0: Side, col0: Side, c: u32, r: u32, w: u32, h: u32) -> (u32, u32) {
    match (row0, col0) {
        // Stored rows stay horizontal: the row index becomes y, the column index x.
        (Side::Top | Side::Bottom, _) => {
            let y = if row0 == Side::Top { r } else { h - 1 - r };
            let x = if col0 == Side::Left { c } else { w - 1 - c };
            (x, y)
        }
        // Stored rows become displayed columns: the row index becomes x, the column index y.
        (Side::Left | Side::Right, _) => {
            let x = if row0 == Side::Left { r } else { h - 1 - r };
            let y = if col0 == Side::Top { c } else { w - 1 - c };
            (x, y)
        }
    }
}

fn assert_oriented_as_spec(value: u32, stored: &RgbImage, displayed: &RgbImage) {
    let (_, row0, col0) = SPEC_TABLE[value as usize - 1];
    let (w, h) = stored.dimensions();
    let swaps = matches!(row0, Side::Left | Side::Right);
    let expected_dims = if swaps { (h, w) } else { (w, h) };
    assert_eq!(displayed.dimensions(), expected_dims, "orientation {value}");
    for r in 0..h {
        for c in 0..w {
            let (x, y) = displayed_position(row0, col0, c, r, w, h);
            assert_eq!(
                displayed.get_pixel(x, y),
                stored.get_pixel(c, r),
                "orientation {value}: stored ({c}, {r}) should be displayed at ({x}, {y})"
            );
        }
    }
}

#[test]
fn orientation_codes_round_trip_and_reject_invalid() {
    for (value, row0, _) in SPEC_TABLE {
        let o = Orientation::from_exif(value).unwrap();
        assert_eq!(u32::from(o.as_u16()), value);
        assert_eq!(
            o.swaps_axes(),
            matches!(row0, Side::Left | Side::Right),
            "value {value}"
        );
        assert_eq!(o.is_mirrored(), matches!(value, 2 | 4 | 5 | 7), "value {value}");
        assert_eq!(o.to_image_orientation().to_exif(), value as u8);
    }
    for bad in [0, 9, 255, 65_536] {
        assert_eq!(Orientation::from_exif(bad), None);
    }
    assert_eq!(Orientation::ALL.map(|o| o.as_u16()), [1, 2, 3, 4, 5, 6, 7, 8]);
}

#[test]
fn apply_matches_exif_definition_for_all_eight_on_5x3() {
    let stored = coded_image(ImageSize::new(5, 3));
    for (value, _, _) in SPEC_TABLE {
        let o = Orientation::from_exif(value).unwrap();
        let displayed = o.apply(stored.clone());
        assert_oriented_as_spec(value, &stored, &displayed);
        assert_eq!(
            o.oriented_size(ImageSize::new(5, 3)),
            ImageSize::new(displayed.width(), displayed.height())
        );
    }
}

#[test]
fn image_crate_apply_orientation_agrees_for_all_eight() {
    // image 0.25.10's DynamicImage::apply_orientation, checked against the same spec table.
    let stored = coded_image(ImageSize::new(5, 3));
    for (value, _, _) in SPEC_TABLE {
        let mut dynamic = image::DynamicImage::ImageRgb8(stored.clone());
        dynamic.apply_orientation(Orientation::from_exif(value).unwrap().to_image_orientation());
        assert_oriented_as_spec(value, &stored, &dynamic.to_rgb8());
    }
}

#[test]
fn load_photo_orients_tiff_pixels_for_all_eight() {
    let stored = coded_image(ImageSize::new(5, 3));
    for (value, _, _) in SPEC_TABLE {
        let bytes = tiff_with_exif(&stored, &[short(Tag::Orientation, value as u16)]);
        let (_dir, path) = temp_file("o.tif", &bytes);
        let photo = load_photo(&path).unwrap();
        assert_eq!(photo.orientation.as_u16() as u32, value);
        assert_eq!(photo.stored_size, ImageSize::new(5, 3));
        assert_eq!(
            photo.size,
            ImageSize::new(photo.image.width(), photo.image.height())
        );
        assert_oriented_as_spec(value, &stored, &photo.image);

        let info = inspect_photo(&path).unwrap();
        assert_eq!((info.size, info.orientation), (photo.size, photo.orientation));
    }
}

#[test]
fn load_photo_orients_png_with_exif_chunk() {
    let stored = coded_image(ImageSize::new(5, 3));
    let mut png = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut png);
    encoder
        .set_exif_metadata(exif_block(&[short(Tag::Orientation, 7)], true))
        .unwrap();
    encoder
        .write_image(stored.as_raw(), 5, 3, image::ExtendedColorType::Rgb8)
        .unwrap();
    let (_dir, path) = temp_file("o.png", &png);
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.orientation, Orientation::Transverse);
    assert_oriented_as_spec(7, &stored, &photo.image);
}

#[test]
fn invalid_orientation_value_is_normal_with_warning() {
    let bytes = jpeg_with_exif(ImageSize::new(40, 24), &[short(Tag::Orientation, 9)]);
    let (_dir, path) = temp_file("o.jpg", &bytes);
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.orientation, Orientation::Normal);
    assert_eq!(photo.size, ImageSize::new(40, 24));
    assert!(
        any_warning(&photo.warnings, "Orientation is 9"),
        "{:?}",
        photo.warnings
    );
}

// ---------------------------------------------------------------------------------------------------
// Focal rules on generated JPEGs
// ---------------------------------------------------------------------------------------------------

#[test]
fn f35_only_uses_diagonal_rule() {
    let size = ImageSize::new(64, 48);
    let bytes = jpeg_with_exif(size, &[short(Tag::FocalLengthIn35mmFilm, 26)]);
    let (_dir, path) = temp_file("f35.jpg", &bytes);
    let photo = load_photo(&path).unwrap();
    let focal = photo.exif_focal.unwrap();
    assert_eq!(focal.source(), FocalSource::Exif35mm);
    // 26 · √(64² + 48²) / √(36² + 24²) = 26 · 80 / 43.2666… = 48.0740…
    assert_close(focal.focal_px(), 26.0 * 80.0 / 1872f64.sqrt());
    assert!(photo.warnings.is_empty(), "{:?}", photo.warnings);
}

#[test]
fn f35_preferred_over_focal_plane() {
    let size = ImageSize::new(64, 48);
    let fields = [
        short(Tag::FocalLengthIn35mmFilm, 26),
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 254, 1),
    ];
    let (_dir, path) = temp_file("both.jpg", &jpeg_with_exif(size, &fields));
    let focal = load_photo(&path).unwrap().exif_focal.unwrap();
    assert_eq!(focal.source(), FocalSource::Exif35mm);
    assert_close(focal.focal_px(), diagonal_rule(26.0, size));
}

#[test]
fn f35_with_orientation_6_uses_oriented_size() {
    let stored = ImageSize::new(64, 40);
    let fields = [short(Tag::Orientation, 6), short(Tag::FocalLengthIn35mmFilm, 28)];
    let (_dir, path) = temp_file("rot.jpg", &jpeg_with_exif(stored, &fields));
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.orientation, Orientation::Rotate90Cw);
    assert_eq!(photo.size, ImageSize::new(40, 64));
    assert_eq!((photo.image.width(), photo.image.height()), (40, 64));
    let focal = photo.exif_focal.unwrap();
    assert_eq!(focal.source(), FocalSource::Exif35mm);
    assert_close(focal.focal_px(), diagonal_rule(28.0, ImageSize::new(40, 64)));
    // Metadata without decoding agrees.
    let info = inspect_photo(&path).unwrap();
    assert_eq!(info.size, ImageSize::new(40, 64));
    assert_eq!(info.stored_size, stored);
    assert_eq!(info.exif_focal, photo.exif_focal);
}

/// FocalLength 5 mm with a resolution that gives 10 px/mm in every unit: f = 50 px.
#[test]
fn focal_plane_in_every_unit() {
    let size = ImageSize::new(60, 40);
    // (unit field, resolution as num/denom): 254 px/inch, 100 px/cm, 10 px/mm, 1/100 px/µm, and absent
    // unit (EXIF default inch).
    let cases: [(Option<u16>, u32, u32); 5] = [
        (Some(2), 254, 1),
        (Some(3), 100, 1),
        (Some(4), 10, 1),
        (Some(5), 1, 100),
        (None, 254, 1),
    ];
    for (unit, num, denom) in cases {
        let mut fields = vec![
            rational(Tag::FocalLength, 5, 1),
            rational(Tag::FocalPlaneXResolution, num, denom),
        ];
        if let Some(unit) = unit {
            fields.push(short(Tag::FocalPlaneResolutionUnit, unit));
        }
        let (_dir, path) = temp_file("fp.jpg", &jpeg_with_exif(size, &fields));
        let photo = load_photo(&path).unwrap();
        let focal = photo
            .exif_focal
            .unwrap_or_else(|| panic!("unit {unit:?}: {:?}", photo.warnings));
        assert_eq!(focal.source(), FocalSource::ExifFocalPlane, "unit {unit:?}");
        assert_close(focal.focal_px(), 50.0);
        // Falling back from f35 is reported; so is the default unit.
        assert!(any_warning(
            &photo.warnings,
            "FocalLengthIn35mmFilm unusable (FocalLengthIn35mmFilm absent)"
        ));
        assert_eq!(
            any_warning(&photo.warnings, "using the EXIF default, inch"),
            unit.is_none()
        );
    }
}

#[test]
fn focal_plane_unknown_unit_is_skipped() {
    let fields = [
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 254, 1),
        short(Tag::FocalPlaneResolutionUnit, 1),
    ];
    let (_dir, path) = temp_file("u.jpg", &jpeg_with_exif(ImageSize::new(60, 40), &fields));
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.exif_focal, None);
    assert!(
        any_warning(&photo.warnings, "FocalPlaneResolutionUnit is 1"),
        "{:?}",
        photo.warnings
    );
}

#[test]
fn focal_plane_corrects_resize_via_pixel_x_dimension() {
    // Recorded 240×160, stored 60×40 (4× smaller). 1016 px/inch = 40 px/mm; f = 5 · 40 · 60/240 = 50 px.
    let fields = [
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 1016, 1),
        short(Tag::FocalPlaneResolutionUnit, 2),
        long(Tag::PixelXDimension, 240),
        long(Tag::PixelYDimension, 160),
    ];
    let (_dir, path) = temp_file("resized.jpg", &jpeg_with_exif(ImageSize::new(60, 40), &fields));
    let photo = load_photo(&path).unwrap();
    let focal = photo.exif_focal.unwrap();
    assert_eq!(focal.source(), FocalSource::ExifFocalPlane);
    assert_close(focal.focal_px(), 5.0 * 40.0 * 60.0 / 240.0);
    assert!(
        any_warning(&photo.warnings, "resized after capture"),
        "{:?}",
        photo.warnings
    );
}

#[test]
fn focal_plane_resize_uses_stored_width_when_orientation_swaps_axes() {
    // Stored 60×40 with orientation 6 (displayed 40×60). PixelXDimension 240 describes the stored x
    // axis, so the scale is stored width / 240 = 60/240, not displayed width / 240 = 40/240.
    let fields = [
        short(Tag::Orientation, 6),
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 1016, 1),
        long(Tag::PixelXDimension, 240),
        long(Tag::PixelYDimension, 160),
    ];
    let (_dir, path) = temp_file(
        "rot_resized.jpg",
        &jpeg_with_exif(ImageSize::new(60, 40), &fields),
    );
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.size, ImageSize::new(40, 60));
    let focal = photo.exif_focal.unwrap();
    assert_close(focal.focal_px(), 5.0 * 40.0 * 60.0 / 240.0);
    assert!(
        any_warning(&photo.warnings, "stored width 60 px"),
        "{:?}",
        photo.warnings
    );
    assert!(
        !any_warning(&photo.warnings, "transposed"),
        "{:?}",
        photo.warnings
    );

    // Without PixelYDimension there is no aspect ratio to cross-check: only the orientation tells
    // which axis PixelXDimension belongs to.
    let fields = [
        short(Tag::Orientation, 8),
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 1016, 1),
        long(Tag::PixelXDimension, 240),
    ];
    let (_dir, path) = temp_file(
        "rot_resized_x_only.jpg",
        &jpeg_with_exif(ImageSize::new(60, 40), &fields),
    );
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.size, ImageSize::new(40, 60));
    assert_close(photo.exif_focal.unwrap().focal_px(), 5.0 * 40.0 * 60.0 / 240.0);
}

#[test]
fn focal_plane_recognises_pixels_rotated_without_tag_update() {
    // Stored 40×60 (already portrait, orientation 1) but PixelX/Y say 240×160: the sensor x axis is now
    // the stored y axis; scale = 60/240.
    let fields = [
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 1016, 1),
        long(Tag::PixelXDimension, 240),
        long(Tag::PixelYDimension, 160),
    ];
    let (_dir, path) = temp_file("baked.jpg", &jpeg_with_exif(ImageSize::new(40, 60), &fields));
    let photo = load_photo(&path).unwrap();
    assert_close(photo.exif_focal.unwrap().focal_px(), 5.0 * 40.0 * 60.0 / 240.0);
    assert!(any_warning(&photo.warnings, "transposed"), "{:?}", photo.warnings);
}

#[test]
fn cropped_image_keeps_width_scale_and_warns() {
    // Stored 60×30 vs recorded 240×160 (aspect 2 vs 1.5): probably cropped; scale stays 60/240.
    let fields = [
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 1016, 1),
        long(Tag::PixelXDimension, 240),
        long(Tag::PixelYDimension, 160),
    ];
    let (_dir, path) = temp_file("crop.jpg", &jpeg_with_exif(ImageSize::new(60, 30), &fields));
    let photo = load_photo(&path).unwrap();
    assert_close(photo.exif_focal.unwrap().focal_px(), 50.0);
    assert!(any_warning(&photo.warnings, "cropped"), "{:?}", photo.warnings);
}

#[test]
fn implausible_f35_falls_through_to_focal_plane_with_warning() {
    // f35 = 1 mm on 64×48: f = 80/43.27 = 1.85 px, FOV = 2·atan(64/3.70) = 173.4° > 170°.
    let size = ImageSize::new(64, 48);
    let fields = [
        short(Tag::FocalLengthIn35mmFilm, 1),
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 254, 1),
    ];
    let (_dir, path) = temp_file("bad35.jpg", &jpeg_with_exif(size, &fields));
    let photo = load_photo(&path).unwrap();
    let focal = photo.exif_focal.unwrap();
    assert_eq!(focal.source(), FocalSource::ExifFocalPlane);
    assert_close(focal.focal_px(), 50.0);
    let fov_deg = 2.0 * (64.0 / (2.0 * diagonal_rule(1.0, size))).atan().to_degrees();
    assert!(fov_deg > MAX_PLAUSIBLE_HFOV_DEG);
    let expected = format!(
        "FocalLengthIn35mmFilm = 1 mm gives f = {:.1} px",
        diagonal_rule(1.0, size)
    );
    assert!(any_warning(&photo.warnings, &expected), "{:?}", photo.warnings);
    assert!(
        any_warning(&photo.warnings, &format!("{fov_deg:.1}°")),
        "{:?}",
        photo.warnings
    );
    assert!(any_warning(&photo.warnings, "outside the plausible 5°–170°"));
}

#[test]
fn implausible_everything_gives_none_with_warnings() {
    // f35 = 5000 mm: FOV ≈ 0.4°; focal plane: 5 mm · 10 px/mm on 6000 px wide: FOV ≈ 177.6°.
    let info = ExifInfo {
        present: true,
        focal_length_in_35mm_film_mm: Some(5000),
        focal_length_mm: Some(5.0),
        focal_plane_x_resolution: Some(10.0),
        focal_plane_resolution_unit: Some(4),
        ..Default::default()
    };
    let result = focal_from_exif(&info, ImageSize::new(6000, 4000));
    assert_eq!(result.focal, None);
    let skipped = |w: &&String| w.contains("outside the plausible") && w.ends_with("ignoring it");
    assert_eq!(
        result.warnings.iter().filter(skipped).count(),
        2,
        "{:?}",
        result.warnings
    );
    assert!(any_warning(&result.warnings, "no usable focal length in EXIF"));
}

#[test]
fn zero_denominators_are_ignored_with_warning() {
    let fields = [
        rational(Tag::FocalLength, 5, 0),
        rational(Tag::FocalPlaneXResolution, 254, 0),
    ];
    let (_dir, path) = temp_file("zero.jpg", &jpeg_with_exif(ImageSize::new(60, 40), &fields));
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.exif_focal, None);
    assert_eq!(photo.exif.focal_length_mm, None);
    assert!(
        any_warning(&photo.warnings, "FocalLength is 5/0 (zero denominator)"),
        "{:?}",
        photo.warnings
    );
    assert!(
        any_warning(&photo.warnings, "FocalPlaneXResolution is 254/0"),
        "{:?}",
        photo.warnings
    );
    assert!(any_warning(&photo.warnings, "no usable focal length"));
}

#[test]
fn zero_f35_means_unknown_and_falls_through() {
    let fields = [
        short(Tag::FocalLengthIn35mmFilm, 0),
        rational(Tag::FocalLength, 5, 1),
        rational(Tag::FocalPlaneXResolution, 100, 1),
        short(Tag::FocalPlaneResolutionUnit, 3),
    ];
    let (_dir, path) = temp_file("z35.jpg", &jpeg_with_exif(ImageSize::new(60, 40), &fields));
    let photo = load_photo(&path).unwrap();
    assert_close(photo.exif_focal.unwrap().focal_px(), 50.0);
    assert!(
        any_warning(&photo.warnings, "FocalLengthIn35mmFilm is 0 (unknown)"),
        "{:?}",
        photo.warnings
    );
}

#[test]
fn make_model_and_little_endian_block() {
    let fields = [
        ascii(Tag::Make, "Canon"),
        ascii(Tag::Model, "Canon EOS 40D"),
        short(Tag::FocalLengthIn35mmFilm, 50),
    ];
    let block = exif_block(&fields, true);
    let info = read_exif_raw(&block);
    assert!(info.present);
    assert_eq!(info.make.as_deref(), Some("Canon"));
    assert_eq!(info.camera_name().as_deref(), Some("Canon EOS 40D"));
    assert_eq!(info.focal_length_in_35mm_film_mm, Some(50));
    // The APP1 identifier prefix is accepted too.
    let mut prefixed = b"Exif\0\0".to_vec();
    prefixed.extend_from_slice(&block);
    assert_eq!(read_exif_raw(&prefixed), info);
}

#[test]
fn no_exif_gives_no_focal_and_a_warning() {
    let (_dir, path) = temp_file("plain.jpg", &jpeg_with_app1(ImageSize::new(60, 40), None));
    let photo = load_photo(&path).unwrap();
    assert!(!photo.exif.present);
    assert_eq!(photo.exif_focal, None);
    assert_eq!(photo.orientation, Orientation::Normal);
    assert!(
        any_warning(&photo.warnings, "no EXIF metadata"),
        "{:?}",
        photo.warnings
    );
}

#[test]
fn corrupt_exif_is_a_warning_not_a_failure() {
    let size = ImageSize::new(60, 40);
    // (a) not a TIFF header at all; (b) a TIFF header whose IFD offset points past the end;
    // (c) a valid block cut in the middle of its Exif sub-IFD.
    let full = exif_block(
        &[
            short(Tag::Orientation, 6),
            short(Tag::FocalLengthIn35mmFilm, 26),
            rational(Tag::FocalLength, 5, 1),
        ],
        false,
    );
    let cut = full[..full.len() - 12].to_vec();
    let payloads: [Vec<u8>; 3] = [
        b"garbage garbage garbage".to_vec(),
        b"MM\0*\0\0\xff\xff".to_vec(),
        cut,
    ];
    for payload in payloads {
        let (_dir, path) = temp_file("bad_exif.jpg", &jpeg_with_app1(size, Some(&payload)));
        let photo = load_photo(&path).unwrap();
        assert!(any_warning(&photo.warnings, "EXIF"), "{:?}", photo.warnings);
        let info = inspect_photo(&path).unwrap();
        assert_eq!(info.warnings, photo.warnings);
    }
    // Raw garbage never panics and yields "no EXIF".
    for junk in [&b""[..], b"II*\0", b"II*\0\x08\0\0\0\xff\xff", b"Exif\0\0MM"] {
        let info = read_exif_raw(junk);
        assert!(!info.present || info.warnings.iter().any(|w| w.contains("corrupt")));
        assert!(!info.warnings.is_empty());
    }
    assert!(!read_exif(b"\xff\xd8\xff\xe1\x00").present);
}

// ---------------------------------------------------------------------------------------------------
// Pixels, formats, errors
// ---------------------------------------------------------------------------------------------------

#[test]
fn sixteen_bit_rgba_png_becomes_8_bit_rgb() {
    // 3×2 RGBA16; samples are multiples of 257 so the 8-bit value is exactly v / 257.
    let (w, h) = (3u32, 2u32);
    let mut samples = Vec::new();
    for i in 0..(w * h) as u16 {
        samples.extend_from_slice(&[257 * (10 + i), 257 * (100 + i), 257 * (200 + i), 257 * (i * 40)]);
    }
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_ne_bytes()).collect();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&bytes, w, h, image::ExtendedColorType::Rgba16)
        .unwrap();
    let (_dir, path) = temp_file("rgba16.png", &png);
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.size, ImageSize::new(3, 2));
    for (i, px) in photo.image.pixels().enumerate() {
        let i = i as u8;
        assert_eq!(
            px.0,
            [10 + i, 100 + i, 200 + i],
            "pixel {i}: alpha dropped, not composited"
        );
    }
    assert!(any_warning(&photo.warnings, "alpha channel"));
    assert!(any_warning(&photo.warnings, "converted to 8 bits"));
}

#[test]
fn webp_and_bmp_load() {
    let stored = coded_image(ImageSize::new(7, 3));
    let mut webp = Vec::new();
    let mut encoder = image::codecs::webp::WebPEncoder::new_lossless(&mut webp);
    encoder
        .set_exif_metadata(exif_block(&[short(Tag::Orientation, 8)], false))
        .unwrap();
    encoder
        .write_image(stored.as_raw(), 7, 3, image::ExtendedColorType::Rgb8)
        .unwrap();
    let (_dir, path) = temp_file("p.webp", &webp);
    let photo = load_photo(&path).unwrap();
    assert_oriented_as_spec(8, &stored, &photo.image);

    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(stored.as_raw(), 7, 3, image::ExtendedColorType::Rgb8)
        .unwrap();
    let (_dir, path) = temp_file("p.bmp", &bmp);
    let photo = load_photo(&path).unwrap();
    assert_eq!(photo.image, stored);
    assert!(any_warning(&photo.warnings, "no EXIF metadata"));
}

fn assert_message_ends_with_path(err: &PhotoError, path: &Path) {
    let message = err.to_string();
    assert!(message.ends_with(&path.display().to_string()), "{message}");
}

#[test]
fn truncated_jpeg_is_an_error_and_inspect_warns() {
    let bytes = jpeg_with_exif(ImageSize::new(120, 72), &[short(Tag::FocalLengthIn35mmFilm, 26)]);
    for keep in [bytes.len() - 2, bytes.len() * 3 / 4, bytes.len() / 2] {
        let (_dir, path) = temp_file("cut.jpg", &bytes[..keep]);
        let err = load_photo(&path).unwrap_err();
        assert!(matches!(err, PhotoError::Truncated { .. }), "{keep}: {err:?}");
        assert_message_ends_with_path(&err, &path);
        let info = inspect_photo(&path).unwrap();
        assert!(any_warning(&info.warnings, "truncated"), "{:?}", info.warnings);
        assert!(info.exif_focal.is_some());
    }
    // A thumbnail JPEG inside the EXIF block carries its own end-of-image marker; it must not count.
    let thumbnail = jpeg_with_app1(ImageSize::new(8, 6), None);
    let orientation = short(Tag::Orientation, 1);
    let thumbnail_orientation = orientation_thumbnail();
    let mut writer = Writer::new();
    writer.push_field(&orientation);
    writer.push_field(&thumbnail_orientation);
    writer.set_jpeg(&thumbnail, In::THUMBNAIL);
    let mut block = Cursor::new(Vec::new());
    writer.write(&mut block, false).unwrap();
    let with_thumbnail = jpeg_with_app1(ImageSize::new(64, 48), Some(block.get_ref()));
    let (_dir, path) = temp_file("thumb.jpg", &with_thumbnail);
    load_photo(&path).unwrap();
    let (_dir, path) = temp_file("thumb_cut.jpg", &with_thumbnail[..with_thumbnail.len() - 30]);
    assert!(matches!(load_photo(&path), Err(PhotoError::Truncated { .. })));
    // Cut inside the headers (quantisation/Huffman tables): reported as truncated too.
    let (_dir, path) = temp_file("cut.jpg", &bytes[..bytes.len().min(120)]);
    assert!(matches!(load_photo(&path), Err(PhotoError::Truncated { .. })));
}

#[test]
fn truncated_png_tiff_webp_bmp_are_errors() {
    let stored = coded_image(ImageSize::new(9, 5));
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(stored.as_raw(), 9, 5, image::ExtendedColorType::Rgb8)
        .unwrap();
    files.push(("t.png", png));
    files.push(("t.tif", tiff_with_exif(&stored, &[])));
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(stored.as_raw(), 9, 5, image::ExtendedColorType::Rgb8)
        .unwrap();
    files.push(("t.webp", webp));
    let mut bmp = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut bmp)
        .write_image(stored.as_raw(), 9, 5, image::ExtendedColorType::Rgb8)
        .unwrap();
    files.push(("t.bmp", bmp));
    for (name, bytes) in files {
        let keep = bytes.len() - 20;
        let (_dir, path) = temp_file(name, &bytes[..keep]);
        let err = load_photo(&path).unwrap_err();
        assert!(
            matches!(err, PhotoError::Truncated { .. } | PhotoError::Decode { .. }),
            "{name}: {err:?}"
        );
        assert_message_ends_with_path(&err, &path);
    }
}

#[test]
fn missing_unknown_heic_and_too_large_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jpg");
    let err = load_photo(&missing).unwrap_err();
    assert!(matches!(err, PhotoError::NotFound { .. }), "{err:?}");
    assert_message_ends_with_path(&err, &missing);
    assert!(matches!(
        inspect_photo(&missing),
        Err(PhotoError::NotFound { .. })
    ));

    let err = load_photo(dir.path()).unwrap_err();
    assert!(matches!(err, PhotoError::Io { .. }), "{err:?}");

    let (_d, text) = temp_file("notes.jpg", b"these are not pixels");
    let err = load_photo(&text).unwrap_err();
    assert!(matches!(err, PhotoError::UnknownFormat { .. }), "{err:?}");
    assert_message_ends_with_path(&err, &text);

    let (_d, heic) = temp_file("x.heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic");
    let err = load_photo(&heic).unwrap_err();
    assert!(
        matches!(&err, PhotoError::UnsupportedFormat { format, .. } if format == "HEIC"),
        "{err:?}"
    );
    assert!(err.to_string().contains("convert it to JPEG or PNG"));

    let (_d, big) = temp_file("big.jpg", &jpeg_with_app1(ImageSize::new(64, 48), None));
    let limits = PhotoLimits {
        max_pixels: 3000,
        ..PhotoLimits::default()
    };
    let err = load_photo_with_limits(&big, &limits).unwrap_err();
    assert!(matches!(err, PhotoError::TooLarge { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("64×48 px is 3072 pixels (0.0 megapixels), more than the limit of 3000 pixels"));
    assert_message_ends_with_path(&err, &big);
    let limits = PhotoLimits {
        max_file_bytes: 10,
        ..PhotoLimits::default()
    };
    assert!(matches!(
        load_photo_with_limits(&big, &limits),
        Err(PhotoError::TooLarge { .. })
    ));
    let limits = PhotoLimits {
        max_decoded_bytes: 64 * 48 * 3 - 1,
        ..PhotoLimits::default()
    };
    assert!(matches!(
        load_photo_with_limits(&big, &limits),
        Err(PhotoError::TooLarge { .. })
    ));
    assert!(load_photo_with_limits(
        &big,
        &PhotoLimits {
            max_pixels: 64 * 48,
            ..PhotoLimits::default()
        }
    )
    .is_ok());
}

#[test]
fn default_limits_are_documented_values() {
    let limits = PhotoLimits::default();
    assert_eq!(limits.max_pixels, 100_000_000);
    assert_eq!(limits.max_decoded_bytes, 1 << 30);
}
