//! Criterion benchmark of the cloud stage alone on the shared 12 MP synthetic RGB-D scene
//! (4032 × 3024, `common/synthetic_scene.rs`): `cloud_from_depth` with the default settings, without
//! normals, without filters, with voxel down-sampling, the standalone flying-pixel mask and normal map,
//! and statistical outlier removal on a 5 cm voxel cloud.
//!
//! `cargo bench -p depth2ply-geometry --bench cloud`. The whole depth → PLY file chain is in
//! `benches/pipeline.rs`.

#[path = "common/synthetic_scene.rs"]
mod synthetic_scene;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use depth2ply_geometry::filter::{flying_pixel_mask, remove_statistical_outliers, voxel_downsample};
use depth2ply_geometry::normals::normal_map_from_depth;
use depth2ply_geometry::{
    cloud_from_depth, CloudConfig, FilterConfig, NormalConfig, StatisticalOutlierConfig,
};

fn cloud(c: &mut Criterion) {
    let scene = match synthetic_scene::make_scene(synthetic_scene::PHOTO_SIZE) {
        Ok(scene) => scene,
        Err(e) => panic!("cannot build the synthetic scene: {e}"),
    };
    let (depth, k, rgb) = (&scene.depth, &scene.intrinsics, &scene.rgb);
    let mut group = c.benchmark_group("cloud_12mp");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(depth.size().pixel_count() as u64));

    let variants = [
        ("default_rgb", CloudConfig::default()),
        (
            "no_normals_rgb",
            CloudConfig {
                estimate_normals: false,
                ..CloudConfig::default()
            },
        ),
        (
            "no_filter_rgb",
            CloudConfig {
                filter: FilterConfig::none(),
                ..CloudConfig::default()
            },
        ),
        (
            "grazing_85_rgb",
            CloudConfig {
                filter: FilterConfig {
                    max_view_angle_deg: Some(85.0),
                    ..FilterConfig::default()
                },
                ..CloudConfig::default()
            },
        ),
        (
            "voxel_1cm_rgb",
            CloudConfig {
                filter: FilterConfig {
                    voxel_size_m: Some(0.01),
                    ..FilterConfig::default()
                },
                ..CloudConfig::default()
            },
        ),
    ];
    for (name, config) in variants {
        group.bench_function(name, |b| {
            b.iter(|| black_box(cloud_from_depth(depth, k, Some(rgb), &config)))
        });
    }
    group.bench_function("flying_pixel_mask", |b| {
        b.iter(|| black_box(flying_pixel_mask(depth, 0.04)))
    });
    group.bench_function("normal_map_from_depth", |b| {
        b.iter(|| black_box(normal_map_from_depth(depth, k, &NormalConfig::default())))
    });
    let full = match cloud_from_depth(depth, k, Some(rgb), &CloudConfig::default()) {
        Ok((cloud, _)) => cloud,
        Err(e) => panic!("cloud_from_depth failed: {e}"),
    };
    let coarse = match voxel_downsample(&full, 0.05) {
        Ok(cloud) => cloud,
        Err(e) => panic!("voxel_downsample failed: {e}"),
    };
    group.throughput(Throughput::Elements(coarse.len() as u64));
    group.bench_function("sor_k20_on_5cm_voxels", |b| {
        b.iter_batched(
            || coarse.clone(),
            |mut cloud| {
                black_box(remove_statistical_outliers(
                    &mut cloud,
                    &StatisticalOutlierConfig::default(),
                ))
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, cloud);
criterion_main!(benches);
