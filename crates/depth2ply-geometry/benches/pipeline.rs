//! Criterion benchmark of the 12 MP geometry pipeline on a synthetic RGB-D scene (4032 × 3024, see
//! `common/synthetic_scene.rs`): `cloud_from_depth` with the default filters and normals, PLY
//! serialisation, and the whole chain ending in an atomic binary PLY file in a temporary directory.
//!
//! `cargo bench -p depth2ply-geometry --bench pipeline`. Peak memory is measured by
//! `examples/pipeline_peak.rs`, not here (criterion repeats the work).

#[path = "common/synthetic_scene.rs"]
mod synthetic_scene;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use depth2ply_geometry::{cloud_from_depth, write_ply, write_ply_file, CloudConfig, PlyWriteOptions};

fn pipeline(c: &mut Criterion) {
    let scene = match synthetic_scene::make_scene(synthetic_scene::PHOTO_SIZE) {
        Ok(scene) => scene,
        Err(e) => panic!("cannot build the synthetic scene: {e}"),
    };
    let config = CloudConfig::default();
    let run_cloud = || cloud_from_depth(&scene.depth, &scene.intrinsics, Some(&scene.rgb), &config);
    let (cloud, _) = match run_cloud() {
        Ok(result) => result,
        Err(e) => panic!("cloud_from_depth failed: {e}"),
    };
    let options = PlyWriteOptions::default();
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("no temporary directory: {e}"),
    };
    let path = dir.path().join("bench.ply");
    let mut counter = CountingSink(0);
    if let Err(e) = write_ply(&mut counter, &cloud, &options) {
        panic!("write_ply failed: {e}");
    }
    let ply_len = counter.0;

    let mut group = c.benchmark_group("pipeline_12mp");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(scene.depth.size().pixel_count() as u64));
    group.bench_function("cloud_from_depth", |b| b.iter(|| black_box(run_cloud())));
    group.throughput(Throughput::Bytes(ply_len));
    group.bench_function("serialise_binary_ply", |b| {
        b.iter(|| write_ply(std::io::sink(), black_box(&cloud), &options))
    });
    group.bench_function("write_binary_ply_file", |b| {
        b.iter(|| write_ply_file(&path, black_box(&cloud), &options))
    });
    group.throughput(Throughput::Elements(scene.depth.size().pixel_count() as u64));
    group.bench_function("depth_to_ply_file", |b| {
        b.iter(|| {
            let (cloud, _) = run_cloud().map_err(|e| e.to_string())?;
            write_ply_file(&path, &cloud, &options).map_err(|e| e.to_string())
        })
    });
    group.finish();
}

/// Counts bytes written, to report PLY throughput.
struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
