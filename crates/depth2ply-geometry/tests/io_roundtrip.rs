//! Round trips and error paths of the file formats: PLY write → read, and every depth format loaded
//! from a file this test writes (expected values are the values written), plus fixtures written by
//! NumPy itself (`tools/make_depth_fixtures.py`).

use std::io::Write;
use std::path::{Path, PathBuf};

use depth2ply_geometry::depth_io::{load_npz_focal_px, DepthFormat};
use depth2ply_geometry::nalgebra::{Point3, Vector3};
use depth2ply_geometry::ply::{ply_header, read_ply, PlyEncoding, PlyError, PlyWriteOptions};
use depth2ply_geometry::{
    load_depth, write_depth_npy, write_depth_npz, write_ply_file, DepthIoError, DepthLoadOptions, DepthMap,
    Frame, ImageSize, PointCloud,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/depth")
        .join(name)
}

fn assert_ends_with_path(err: &dyn std::error::Error, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.ends_with(&path.display().to_string()),
        "message does not end with the path: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// PLY

/// A cloud laid out on a 5 × 3 (W × H) pixel grid with awkward values: negative, tiny, huge, −0.0,
/// subnormal; normals of unit length; colours covering 0 and 255.
fn grid_cloud(normals: bool, colors: bool) -> PointCloud {
    let (w, h) = (5u32, 3u32);
    let mut positions = Vec::new();
    let mut normal_list = Vec::new();
    let mut color_list = Vec::new();
    for v in 0..h {
        for u in 0..w {
            let k = (v * w + u) as f32;
            let z = 0.5 + 1.37 * k;
            positions.push(Point3::new(
                (u as f32 - 2.0) * z / 3.1,
                (v as f32 - 1.0) * z / 2.9,
                z,
            ));
            let a = 0.3 * k;
            normal_list.push(Vector3::new(a.sin() * 0.6, a.cos() * 0.6, -0.8));
            color_list.push([(k * 17.0) as u8, 255 - (k * 17.0) as u8, (u * 60) as u8]);
        }
    }
    positions[3] = Point3::new(-0.0, f32::MIN_POSITIVE / 8.0, 1e-30);
    positions[7] = Point3::new(-12345.678, 1e30, 0.1);
    PointCloud {
        positions,
        normals: normals.then_some(normal_list),
        colors: colors.then_some(color_list),
        frame: Frame::OpenCv,
    }
}

/// Bitwise comparison, so −0.0 and subnormals must survive too.
fn assert_same_cloud(a: &PointCloud, b: &PointCloud) {
    let bits = |p: &Point3<f32>| [p.x.to_bits(), p.y.to_bits(), p.z.to_bits()];
    assert_eq!(
        a.positions.iter().map(bits).collect::<Vec<_>>(),
        b.positions.iter().map(bits).collect::<Vec<_>>()
    );
    assert_eq!(a.normals, b.normals);
    assert_eq!(a.colors, b.colors);
    assert_eq!(a.frame, b.frame);
}

#[test]
fn ply_round_trip_every_layout_and_encoding() -> TestResult {
    let dir = tempfile::tempdir()?;
    for encoding in [PlyEncoding::BinaryLittleEndian, PlyEncoding::Ascii] {
        for (normals, colors) in [(false, false), (true, false), (false, true), (true, true)] {
            let cloud = grid_cloud(normals, colors);
            let options = PlyWriteOptions::default()
                .with_comment("depth2ply test")
                .with_comment("intrinsics width=5 height=3");
            let options = PlyWriteOptions { encoding, ..options };
            let path = dir.path().join(format!("{encoding:?}-{normals}-{colors}.ply"));
            write_ply_file(&path, &cloud, &options)?;
            let (back, comments) = read_ply(&path)?;
            assert_same_cloud(&back, &cloud);
            assert_eq!(
                comments,
                [
                    "frame=opencv units=metres",
                    "depth2ply test",
                    "intrinsics width=5 height=3"
                ]
            );
            if encoding == PlyEncoding::BinaryLittleEndian {
                let stride = 12 + if normals { 12 } else { 0 } + if colors { 3 } else { 0 };
                let expected = ply_header(&cloud, &options).len() + cloud.len() * stride;
                assert_eq!(std::fs::metadata(&path)?.len() as usize, expected);
            }
        }
    }
    Ok(())
}

#[test]
fn ply_round_trip_keeps_the_frame_and_empty_clouds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("gl.ply");
    let cloud = PointCloud {
        frame: Frame::OpenGl,
        ..grid_cloud(true, true)
    };
    write_ply_file(&path, &cloud, &PlyWriteOptions::default())?;
    assert_same_cloud(&read_ply(&path)?.0, &cloud);

    let empty = PointCloud {
        normals: Some(vec![]),
        colors: Some(vec![]),
        ..Default::default()
    };
    for encoding in [PlyEncoding::BinaryLittleEndian, PlyEncoding::Ascii] {
        write_ply_file(
            &path,
            &empty,
            &PlyWriteOptions {
                encoding,
                comments: vec![],
            },
        )?;
        assert_same_cloud(&read_ply(&path)?.0, &empty);
    }
    Ok(())
}

#[test]
fn ply_reader_reports_truncation_and_trailing_bytes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cloud = grid_cloud(true, true);
    let full = dir.path().join("full.ply");
    write_ply_file(&full, &cloud, &PlyWriteOptions::default())?;
    let bytes = std::fs::read(&full)?;

    let cut = dir.path().join("cut.ply");
    std::fs::write(&cut, &bytes[..bytes.len() - 5])?;
    let err = read_ply(&cut).unwrap_err();
    assert!(matches!(err, PlyError::Truncated { .. }), "{err}");
    assert!(err.to_string().contains("15 vertices"), "{err}");
    assert_ends_with_path(&err, &cut);

    let header_only = dir.path().join("header-only.ply");
    std::fs::write(&header_only, ply_header(&cloud, &PlyWriteOptions::default()))?;
    assert!(matches!(read_ply(&header_only), Err(PlyError::Truncated { .. })));

    let no_end_header = dir.path().join("no-end-header.ply");
    std::fs::write(
        &no_end_header,
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n",
    )?;
    assert!(matches!(
        read_ply(&no_end_header),
        Err(PlyError::Truncated { .. })
    ));

    let extra = dir.path().join("extra.ply");
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 7]);
    std::fs::write(&extra, &longer)?;
    assert!(matches!(
        read_ply(&extra),
        Err(PlyError::TrailingData { bytes: 7, .. })
    ));

    // ASCII: a missing last line is truncation; a half line is a parse error; blank lines at the end are fine.
    let ascii = dir.path().join("ascii.ply");
    let options = PlyWriteOptions {
        encoding: PlyEncoding::Ascii,
        comments: vec![],
    };
    write_ply_file(&ascii, &cloud, &options)?;
    let text = std::fs::read_to_string(&ascii)?;
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n")?;
    assert!(matches!(read_ply(&cut), Err(PlyError::Truncated { .. })));
    let half = lines[..lines.len() - 1].join("\n") + "\n1.5 2";
    std::fs::write(&cut, half)?;
    assert!(matches!(read_ply(&cut), Err(PlyError::Parse { .. })));
    std::fs::write(&cut, text.clone() + "\n\n")?;
    assert_same_cloud(&read_ply(&cut)?.0, &cloud);
    std::fs::write(&cut, text + "0 0 0 0 0 0 0 0 0\n")?;
    assert!(matches!(read_ply(&cut), Err(PlyError::TrailingData { .. })));
    Ok(())
}

#[test]
fn ply_reader_accepts_foreign_layouts_and_rejects_odd_types() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("foreign.ply");
    // Open3D legacy layout (double xyz) plus a face element and an unknown property, big endian.
    let mut bytes =
        b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty double x\nproperty double y\n\
property double z\nproperty float confidence\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n\
element face 1\nproperty list uchar int vertex_indices\nend_header\n"
            .to_vec();
    for v in [1.5f64, -2.0, 3.25] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(&0.9f32.to_be_bytes());
    bytes.extend_from_slice(&[10, 20, 30, 3]);
    for i in [0i32, 0, 0] {
        bytes.extend_from_slice(&i.to_be_bytes());
    }
    std::fs::write(&path, &bytes)?;
    let (cloud, comments) = read_ply(&path)?;
    assert_eq!(cloud.positions, vec![Point3::new(1.5, -2.0, 3.25)]);
    assert_eq!(cloud.colors, Some(vec![[10, 20, 30]]));
    assert_eq!(cloud.normals, None);
    assert!(comments.is_empty());

    std::fs::write(&path, b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty float red\nproperty float green\nproperty float blue\nend_header\n0 0 0 0.5 0.5 0.5\n")?;
    let err = read_ply(&path).unwrap_err();
    assert!(
        matches!(&err, PlyError::UnsupportedPropertyType { property, .. } if property == "red"),
        "{err}"
    );
    assert_ends_with_path(&err, &path);

    std::fs::write(
        &path,
        b"ply\nformat ascii 1.0\nelement point 1\nproperty float x\nend_header\n0\n",
    )?;
    assert!(matches!(read_ply(&path), Err(PlyError::MissingVertices { .. })));
    std::fs::write(&path, b"PLY?\n")?;
    assert!(matches!(read_ply(&path), Err(PlyError::Parse { .. })));
    let missing = dir.path().join("missing.ply");
    let err = read_ply(&missing).unwrap_err();
    assert!(matches!(err, PlyError::Read { .. }));
    assert_ends_with_path(&err, &missing);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Depth: writers for test files (independent of the code under test)

/// 3 rows × 4 columns, all distinct, exactly representable in f16 and as integer millimetres.
const H: usize = 3;
const W: usize = 4;
fn reference_depth() -> Vec<f32> {
    (0..H * W).map(|k| 0.5 + 0.25 * k as f32).collect() // 0.5 … 3.25 m, row-major
}

fn npy_bytes(descr: &str, fortran_order: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let fortran = if fortran_order { "True" } else { "False" };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n");
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn le_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

fn load(path: &Path) -> Result<DepthMap, DepthIoError> {
    load_depth(path, &DepthLoadOptions::default())
}

fn assert_depth(map: &DepthMap, expected: &[f32]) {
    assert_eq!(map.size(), ImageSize::new(W as u32, H as u32));
    assert_eq!(map.as_slice(), expected);
}

// ---------------------------------------------------------------------------------------------------------
// .npy

#[test]
fn npy_dtypes_orders_and_shapes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let depth = reference_depth();
    let shape = format!("({H}, {W})");

    assert_depth(
        &load(&write_file(
            d,
            "f4.npy",
            &npy_bytes("<f4", false, &shape, &le_bytes_f32(&depth)),
        )?)?,
        &depth,
    );

    let f8: Vec<u8> = depth.iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
    assert_depth(
        &load(&write_file(d, "f8.npy", &npy_bytes("<f8", false, &shape, &f8))?)?,
        &depth,
    );

    let be: Vec<u8> = depth.iter().flat_map(|v| v.to_be_bytes()).collect();
    assert_depth(
        &load(&write_file(d, "be.npy", &npy_bytes(">f4", false, &shape, &be))?)?,
        &depth,
    );

    // float16 by hand: 0.5 + 0.25·k for k < 12 has exponent e and mantissa m with v = (1 + m/1024)·2^(e−15).
    let f16: Vec<u8> = depth.iter().flat_map(|&v| f16_bits(v).to_le_bytes()).collect();
    assert_depth(
        &load(&write_file(d, "f2.npy", &npy_bytes("<f2", false, &shape, &f16))?)?,
        &depth,
    );

    // uint16 millimetres, 0 = no depth; TUM-style scale 5000.
    let mut mm: Vec<u16> = depth.iter().map(|&v| (v * 1000.0) as u16).collect();
    mm[5] = 0;
    let u2: Vec<u8> = mm.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = write_file(d, "u2.npy", &npy_bytes("<u2", false, &shape, &u2))?;
    let mut expected = depth.clone();
    expected[5] = 0.0;
    assert_depth(&load(&path)?, &expected);
    let tum = load_depth(
        &path,
        &DepthLoadOptions {
            scale_units_per_m: 5000.0,
        },
    )?;
    let expected_tum: Vec<f32> = mm.iter().map(|&v| (v as f64 / 5000.0) as f32).collect();
    assert_depth(&tum, &expected_tum);

    // Fortran order: element (r, c) is stored at c·H + r.
    let column_major: Vec<f32> = (0..W)
        .flat_map(|c| (0..H).map(move |r| (r, c)))
        .map(|(r, c)| depth[r * W + c])
        .collect();
    let path = write_file(
        d,
        "fortran.npy",
        &npy_bytes("<f4", true, &shape, &le_bytes_f32(&column_major)),
    )?;
    assert_depth(&load(&path)?, &depth);
    let path = write_file(
        d,
        "fortran3.npy",
        &npy_bytes(
            "<f4",
            true,
            &format!("({H}, {W}, 1)"),
            &le_bytes_f32(&column_major),
        ),
    )?;
    assert_depth(&load(&path)?, &depth);

    for shape in [
        format!("({H}, {W}, 1)"),
        format!("(1, {H}, {W})"),
        format!("(1, 1, {H}, {W})"),
    ] {
        let path = write_file(
            d,
            "shaped.npy",
            &npy_bytes("<f4", false, &shape, &le_bytes_f32(&depth)),
        )?;
        assert_depth(&load(&path)?, &depth);
    }

    // NaN, 0 and negative values are kept: they mean "no depth", not an error.
    let mut holes = depth.clone();
    holes[0] = f32::NAN;
    holes[1] = 0.0;
    holes[2] = -1.0;
    let loaded = load(&write_file(
        d,
        "holes.npy",
        &npy_bytes("<f4", false, &shape, &le_bytes_f32(&holes)),
    )?)?;
    assert!(loaded.as_slice()[0].is_nan());
    assert_eq!(&loaded.as_slice()[1..], &holes[1..]);
    assert_eq!(loaded.valid_count(), H * W - 3);
    Ok(())
}

/// binary16 bits of a value that is exactly representable as a normal half float.
fn f16_bits(v: f32) -> u16 {
    let e = v.log2().floor() as i32;
    let m = ((v / 2f32.powi(e) - 1.0) * 1024.0) as u16;
    (((e + 15) as u16) << 10) | m
}

#[test]
fn npy_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let depth = reference_depth();
    let shape = format!("({H}, {W})");
    let data = le_bytes_f32(&depth);

    let path = write_file(d, "i4.npy", &npy_bytes("<i4", false, &shape, &data))?;
    let err = load(&path).unwrap_err();
    assert!(
        matches!(&err, DepthIoError::UnsupportedDtype { found, .. } if found == "'<i4'"),
        "{err}"
    );
    assert!(err.to_string().contains("float32 ('<f4')"), "{err}");
    assert_ends_with_path(&err, &path);

    let rgb = npy_bytes(
        "<f4",
        false,
        &format!("({H}, {W}, 3)"),
        &le_bytes_f32(&[0.0; H * W * 3]),
    );
    let path = write_file(d, "rgb.npy", &rgb)?;
    let err = load(&path).unwrap_err();
    assert!(
        matches!(&err, DepthIoError::UnsupportedShape { found, .. } if found.contains("colour image")),
        "{err}"
    );
    assert_ends_with_path(&err, &path);

    for bad_shape in ["(12,)", "()", "(2, 2, 3)", "(0, 4)"] {
        let path = write_file(d, "shape.npy", &npy_bytes("<f4", false, bad_shape, &data))?;
        assert!(
            matches!(load(&path), Err(DepthIoError::UnsupportedShape { .. })),
            "{bad_shape}"
        );
    }

    // A structured dtype (descr is a list; `npy_bytes` would quote it, so the header is built here).
    let dict = format!("{{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': {shape}, }}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(&data);
    let path = write_file(d, "structured.npy", &bytes)?;
    assert!(matches!(load(&path), Err(DepthIoError::UnsupportedDtype { .. })));

    let truncated = npy_bytes("<f4", false, &shape, &data[..data.len() - 1]);
    let path = write_file(d, "truncated.npy", &truncated)?;
    let err = load(&path).unwrap_err();
    assert!(matches!(err, DepthIoError::Corrupt { .. }), "{err}");
    assert_ends_with_path(&err, &path);

    let mut longer = npy_bytes("<f4", false, &shape, &data);
    longer.extend_from_slice(&[0; 4]);
    assert!(matches!(
        load(&write_file(d, "longer.npy", &longer)?),
        Err(DepthIoError::Corrupt { .. })
    ));

    let full = npy_bytes("<f4", false, &shape, &data);
    for cut in [7, 9, 20] {
        let path = write_file(d, "cut-header.npy", &full[..cut])?;
        assert!(
            matches!(load(&path), Err(DepthIoError::Corrupt { .. })),
            "cut at {cut}"
        );
    }
    let mut bad_version = full.clone();
    bad_version[6] = 9;
    assert!(matches!(
        load(&write_file(d, "v9.npy", &bad_version)?),
        Err(DepthIoError::Corrupt { .. })
    ));
    let garbage = npy_bytes("<f4", false, "(3, 4", &data);
    assert!(matches!(
        load(&write_file(d, "garbage.npy", &garbage)?),
        Err(DepthIoError::Corrupt { .. })
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// .npz

#[test]
fn npz_written_by_us_round_trips() -> TestResult {
    let dir = tempfile::tempdir()?;
    let size = ImageSize::new(W as u32, H as u32);
    let depth = DepthMap::new(size, reference_depth())?;
    let path = dir.path().join("out.npz");
    write_depth_npz(&path, &depth, 1234.5)?;
    assert_eq!(load(&path)?, depth);
    assert_eq!(load_npz_focal_px(&path)?, Some(1234.5));

    let npy = dir.path().join("out.npy");
    write_depth_npy(&npy, &depth)?;
    assert_eq!(load(&npy)?, depth);

    let err = write_depth_npz(&dir.path().join("bad.npz"), &depth, f64::NAN).unwrap_err();
    assert!(matches!(err, DepthIoError::InvalidFocal { .. }));
    let err = write_depth_npz(&dir.path().join("missing-dir/out.npz"), &depth, 500.0).unwrap_err();
    assert!(matches!(err, DepthIoError::Write(_)), "{err}");
    Ok(())
}

fn zip_with(entries: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        zip.start_file(*name, options)?;
        zip.write_all(bytes)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[test]
fn npz_entries_and_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let depth = reference_depth();
    let npy = npy_bytes("<f4", false, &format!("({H}, {W})"), &le_bytes_f32(&depth));

    let stored = zip_with(&[("depth.npy", npy.clone())], zip::CompressionMethod::Stored)?;
    assert_depth(&load(&write_file(d, "stored.npz", &stored)?)?, &depth);
    assert_eq!(load_npz_focal_px(&d.join("stored.npz"))?, None);

    let path = write_file(
        d,
        "other.npz",
        &zip_with(
            &[("inverse_depth.npy", npy.clone()), ("arr_0.npy", npy.clone())],
            zip::CompressionMethod::Deflated,
        )?,
    )?;
    let err = load(&path).unwrap_err();
    assert!(
        matches!(&err, DepthIoError::MissingNpzKey { keys, .. } if keys == &["arr_0", "inverse_depth"]),
        "{err}"
    );
    assert!(
        err.to_string().contains("arrays present: arr_0, inverse_depth"),
        "{err}"
    );
    assert_ends_with_path(&err, &path);

    let deflated = zip_with(&[("depth.npy", npy.clone())], zip::CompressionMethod::Deflated)?;
    let path = write_file(d, "cut.npz", &deflated[..deflated.len() - 30])?;
    let err = load(&path).unwrap_err();
    assert!(matches!(err, DepthIoError::Corrupt { .. }), "{err}");

    // A flipped byte inside the compressed stream: inflate or the CRC check must notice.
    let mut flipped = zip_with(&[("depth.npy", npy.clone())], zip::CompressionMethod::Stored)?;
    let pos = flipped
        .windows(4)
        .position(|w| w == le_bytes_f32(&[depth[5]]).as_slice())
        .unwrap();
    flipped[pos] ^= 0x55;
    let path = write_file(d, "crc.npz", &flipped)?;
    assert!(load(&path).is_err(), "a corrupted entry must not load");

    let int_npz = zip_with(
        &[(
            "depth.npy",
            npy_bytes("<i4", false, &format!("({H}, {W})"), &le_bytes_f32(&depth)),
        )],
        zip::CompressionMethod::Stored,
    )?;
    assert!(matches!(
        load(&write_file(d, "int.npz", &int_npz)?),
        Err(DepthIoError::UnsupportedDtype { .. })
    ));
    Ok(())
}

/// Files written by NumPy itself (`tools/make_depth_fixtures.py`); expected values are the formula the
/// script documents: `depth[r, c] = 0.5 + 0.25·(r·5 + c)` on a 3 × 5 (H × W) grid.
#[test]
fn npz_and_npy_written_by_numpy() -> TestResult {
    let expected: Vec<f32> = (0..15).map(|k| 0.5 + 0.25 * k as f32).collect();
    let size = ImageSize::new(5, 3);
    for name in [
        "savez_compressed_f32.npz",
        "savez_compressed_f16.npz",
        "fortran_f8.npy",
        "mm_u2.npy",
    ] {
        let map = load(&fixture(name)).map_err(|e| format!("{name}: {e}"))?;
        assert_eq!(map.size(), size, "{name}");
        assert_eq!(map.as_slice(), expected.as_slice(), "{name}");
    }
    assert_eq!(
        load_npz_focal_px(&fixture("savez_compressed_f32.npz"))?,
        Some(1500.0)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// PNG

#[test]
fn png16_millimetres_and_tum() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut raw: Vec<u16> = reference_depth().iter().map(|&v| (v * 1000.0) as u16).collect();
    raw[0] = 0;
    raw[11] = u16::MAX;
    let path = dir.path().join("depth.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(W as u32, H as u32, raw.clone())
        .ok_or("buffer")?
        .save(&path)?;
    let mm: Vec<f32> = raw.iter().map(|&v| (v as f64 / 1000.0) as f32).collect();
    assert_depth(&load(&path)?, &mm);
    assert_eq!(load(&path)?.as_slice()[0], 0.0, "0 stays 'no depth'");
    let tum = load_depth(
        &path,
        &DepthLoadOptions {
            scale_units_per_m: 5000.0,
        },
    )?;
    let expected: Vec<f32> = raw.iter().map(|&v| (v as f64 / 5000.0) as f32).collect();
    assert_depth(&tum, &expected);
    assert_eq!(tum.as_slice()[11], 13.107, "65535 / 5000");
    Ok(())
}

#[test]
fn png_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let gray8 = dir.path().join("gray8.png");
    image::GrayImage::new(W as u32, H as u32).save(&gray8)?;
    let err = load(&gray8).unwrap_err();
    assert!(
        matches!(&err, DepthIoError::UnsupportedDtype { found, .. } if found.contains("8-bit")),
        "{err}"
    );
    assert!(err.to_string().contains("16-bit grayscale"), "{err}");
    assert_ends_with_path(&err, &gray8);

    let rgb = dir.path().join("rgb.png");
    image::RgbImage::new(W as u32, H as u32).save(&rgb)?;
    let err = load(&rgb).unwrap_err();
    assert!(matches!(err, DepthIoError::UnsupportedShape { .. }), "{err}");

    let rgb16 = dir.path().join("rgb16.png");
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::new(W as u32, H as u32).save(&rgb16)?;
    assert!(matches!(load(&rgb16), Err(DepthIoError::UnsupportedShape { .. })));

    let la16 = dir.path().join("la16.png");
    image::ImageBuffer::<image::LumaA<u16>, Vec<u16>>::new(W as u32, H as u32).save(&la16)?;
    assert!(matches!(load(&la16), Err(DepthIoError::UnsupportedShape { .. })));

    let good = dir.path().join("good.png");
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(
        64,
        48,
        (0..64 * 48).map(|v| v as u16).collect(),
    )
    .ok_or("buffer")?
    .save(&good)?;
    let bytes = std::fs::read(&good)?;
    let cut = write_file(dir.path(), "cut.png", &bytes[..bytes.len() / 2])?;
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, DepthIoError::Corrupt { .. }), "{err}");
    assert_ends_with_path(&err, &cut);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// PFM

fn pfm_bytes(header: &str, rows_top_to_bottom: &[f32], width: usize, little_endian: bool) -> Vec<u8> {
    let mut out = header.as_bytes().to_vec();
    // PFM stores the bottom row first.
    for row in rows_top_to_bottom.chunks(width).rev() {
        for v in row {
            out.extend_from_slice(&if little_endian {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            });
        }
    }
    out
}

#[test]
fn pfm_both_endiannesses_bottom_row_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let depth = reference_depth();
    let le = write_file(
        dir.path(),
        "le.pfm",
        &pfm_bytes(&format!("Pf\n{W} {H}\n-1.0\n"), &depth, W, true),
    )?;
    let loaded = load(&le)?;
    assert_depth(&loaded, &depth);
    // The first float in the file is the bottom-left pixel.
    let bytes = std::fs::read(&le)?;
    let header_len = format!("Pf\n{W} {H}\n-1.0\n").len();
    let first = f32::from_le_bytes(bytes[header_len..header_len + 4].try_into()?);
    assert_eq!(loaded.get(0, H as u32 - 1), Some(first));
    assert_eq!(loaded.get(0, 0), Some(0.5));

    let be = write_file(
        dir.path(),
        "be.pfm",
        &pfm_bytes(&format!("Pf\n{W} {H}\n1.0\n"), &depth, W, false),
    )?;
    assert_depth(&load(&be)?, &depth);
    // Header tokens on one line with extra spaces, and a scale other than ±1, are accepted.
    let odd = write_file(
        dir.path(),
        "odd.pfm",
        &pfm_bytes(&format!("Pf  {W}\t{H}\n-0.5\n"), &depth, W, true),
    )?;
    assert_depth(&load(&odd)?, &depth);
    Ok(())
}

#[test]
fn pfm_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let depth = reference_depth();
    let colour = write_file(
        dir.path(),
        "rgb.pfm",
        &pfm_bytes(&format!("PF\n{W} {H}\n-1.0\n"), &[0.0; 36], W * 3, true),
    )?;
    let err = load(&colour).unwrap_err();
    assert!(matches!(err, DepthIoError::UnsupportedShape { .. }), "{err}");
    assert_ends_with_path(&err, &colour);

    let full = pfm_bytes(&format!("Pf\n{W} {H}\n-1.0\n"), &depth, W, true);
    let cut = write_file(dir.path(), "cut.pfm", &full[..full.len() - 2])?;
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, DepthIoError::Corrupt { .. }), "{err}");
    assert_ends_with_path(&err, &cut);
    for header in [
        "Pf\nfour 3\n-1\n",
        "Pf\n4 3\n0\n",
        "Pf\n4 3\nnan\n",
        "Pf\n4 0\n-1\n",
        "Pf\n4",
    ] {
        let path = write_file(dir.path(), "bad.pfm", &pfm_bytes(header, &depth, W, true))?;
        assert!(
            matches!(
                load(&path),
                Err(DepthIoError::Corrupt { .. } | DepthIoError::UnsupportedShape { .. })
            ),
            "{header:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// TIFF

#[test]
fn float_and_u16_tiff() -> TestResult {
    use tiff::encoder::{colortype, TiffEncoder};
    let dir = tempfile::tempdir()?;
    let depth = reference_depth();
    let path = dir.path().join("depth.tif");
    TiffEncoder::new(std::fs::File::create(&path)?)?
        .write_image::<colortype::Gray32Float>(W as u32, H as u32, &depth)?;
    assert_depth(&load(&path)?, &depth);

    let f64_path = dir.path().join("depth64.tiff");
    let wide: Vec<f64> = depth.iter().map(|&v| v as f64).collect();
    TiffEncoder::new(std::fs::File::create(&f64_path)?)?
        .write_image::<colortype::Gray64Float>(W as u32, H as u32, &wide)?;
    assert_depth(&load(&f64_path)?, &depth);

    let mm: Vec<u16> = depth.iter().map(|&v| (v * 1000.0) as u16).collect();
    let u16_path = dir.path().join("mm.TIF");
    TiffEncoder::new(std::fs::File::create(&u16_path)?)?
        .write_image::<colortype::Gray16>(W as u32, H as u32, &mm)?;
    let tum = load_depth(
        &u16_path,
        &DepthLoadOptions {
            scale_units_per_m: 5000.0,
        },
    )?;
    assert_depth(
        &tum,
        &mm.iter().map(|&v| (v as f64 / 5000.0) as f32).collect::<Vec<_>>(),
    );
    Ok(())
}

#[test]
fn tiff_errors() -> TestResult {
    use tiff::encoder::{colortype, TiffEncoder};
    let dir = tempfile::tempdir()?;
    let gray8 = dir.path().join("gray8.tif");
    TiffEncoder::new(std::fs::File::create(&gray8)?)?.write_image::<colortype::Gray8>(
        W as u32,
        H as u32,
        &[0; W * H],
    )?;
    let err = load(&gray8).unwrap_err();
    assert!(matches!(err, DepthIoError::UnsupportedDtype { .. }), "{err}");
    assert_ends_with_path(&err, &gray8);

    let rgb = dir.path().join("rgb.tif");
    TiffEncoder::new(std::fs::File::create(&rgb)?)?.write_image::<colortype::RGB32Float>(
        W as u32,
        H as u32,
        &[0.0; W * H * 3],
    )?;
    assert!(matches!(load(&rgb), Err(DepthIoError::UnsupportedShape { .. })));

    let good = dir.path().join("good.tif");
    TiffEncoder::new(std::fs::File::create(&good)?)?.write_image::<colortype::Gray32Float>(
        64,
        48,
        &vec![1.0; 64 * 48],
    )?;
    let bytes = std::fs::read(&good)?;
    let cut = write_file(dir.path(), "cut.tif", &bytes[..bytes.len() / 3])?;
    let err = load(&cut).unwrap_err();
    assert!(matches!(err, DepthIoError::Corrupt { .. }), "{err}");
    assert_ends_with_path(&err, &cut);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Errors common to all formats

#[test]
fn extension_content_scale_and_missing_file_errors() -> TestResult {
    let dir = tempfile::tempdir()?;
    let exr = write_file(dir.path(), "depth.exr", b"v/1\x01")?;
    let err = load(&exr).unwrap_err();
    assert!(matches!(err, DepthIoError::UnknownExtension { .. }));
    assert!(err.to_string().contains(".npy, .npz, .png"), "{err}");
    assert_ends_with_path(&err, &exr);

    let no_ext = write_file(dir.path(), "depth", b"\x93NUMPY")?;
    assert!(matches!(
        load(&no_ext),
        Err(DepthIoError::UnknownExtension { .. })
    ));

    let png_named_npy = dir.path().join("depth.npy");
    image::GrayImage::new(2, 2).save_with_format(&png_named_npy, image::ImageFormat::Png)?;
    let err = load(&png_named_npy).unwrap_err();
    assert!(
        matches!(
            err,
            DepthIoError::FormatMismatch {
                expected: DepthFormat::Npy,
                found: Some(DepthFormat::Png16),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("rename it with the .png extension"),
        "{err}"
    );
    assert_ends_with_path(&err, &png_named_npy);

    let jpeg_named_png = write_file(dir.path(), "photo.png", b"\xff\xd8\xff\xe0\0\x10JFIF")?;
    assert!(matches!(
        load(&jpeg_named_png),
        Err(DepthIoError::FormatMismatch {
            expected: DepthFormat::Png16,
            found: None,
            ..
        })
    ));

    let empty = write_file(dir.path(), "empty.pfm", b"")?;
    assert!(matches!(load(&empty), Err(DepthIoError::Corrupt { .. })));

    let missing = dir.path().join("missing.npy");
    let err = load(&missing).unwrap_err();
    assert!(matches!(err, DepthIoError::Read { .. }));
    assert_ends_with_path(&err, &missing);

    let npy = write_file(
        dir.path(),
        "ok.npy",
        &npy_bytes("<f4", false, "(1, 1)", &le_bytes_f32(&[1.0])),
    )?;
    for scale in [0.0, -1000.0, f64::NAN, f64::INFINITY] {
        let err = load_depth(
            &npy,
            &DepthLoadOptions {
                scale_units_per_m: scale,
            },
        )
        .unwrap_err();
        assert!(matches!(err, DepthIoError::InvalidScale { .. }), "{scale}");
        assert_ends_with_path(&err, &npy);
    }
    Ok(())
}
