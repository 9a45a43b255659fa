//! The int8 front of the trunk cache (`model.front_precision = "int8"`), on real photos from
//! ../shared/data: its maps stay close to the float front's, it caches into a folder of its own,
//! and the ranges the first build calibrated serve every later build of that folder.

use std::path::PathBuf;

use burn::tensor::Device;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::cache::{self, CacheEntry, CachedFront, TrunkCache};
use unisight_train::config::{AugmentConfig, FrontPrecision};
use unisight_train::network::TrainFrom;

fn grocery() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/grocery-store/dataset");
    dir.is_dir().then_some(dir)
}

/// Store photos spread over the training list, two views each.
fn entries(root: &std::path::Path, n: usize) -> Vec<CacheEntry> {
    let text = std::fs::read_to_string(root.join("train.txt")).unwrap();
    text.lines()
        .step_by(53)
        .take(n)
        .map(|line| {
            let rel = line.split(',').next().unwrap();
            CacheEntry {
                key: rel.to_string(),
                file: root.join(rel),
                views: 2,
            }
        })
        .collect()
}

fn cosine(a: &[half::f16], b: &[half::f16]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x.to_f32()), f64::from(y.to_f32()));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

#[test]
fn int8_front_maps_follow_the_float_front_and_its_calibration_is_kept() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let lib =
        unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir()).unwrap();
    unisight_embed::init_onnxruntime(&lib).unwrap();
    let model =
        UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &Device::flex()).unwrap();
    let augment = AugmentConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let all = entries(&root, 40);
    let build = |precision, entries: &[CacheEntry]| -> TrunkCache {
        let front = CachedFront {
            train_from: TrainFrom::Block(14),
            precision,
        };
        cache::build(dir.path(), &model, front, entries, &augment, 3, false).unwrap()
    };
    let float = build(FrontPrecision::Float32, &all);
    let int8 = build(FrontPrecision::Int8, &all[..20]);

    let folders: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(folders.len(), 2, "one folder per precision: {folders:?}");
    let graphs: Vec<Vec<u8>> = folders
        .iter()
        .map(|f| std::fs::read(f.join("frozen.onnx")).unwrap())
        .collect();
    let quantized = |g: &Vec<u8>| g.windows(14).any(|w| w == b"QuantizeLinear");
    assert_eq!(
        graphs.iter().filter(|g| quantized(g)).count(),
        1,
        "exactly one folder holds a quantized graph"
    );
    let int8_graph = graphs.iter().find(|g| quantized(g)).unwrap().clone();

    // close to the float maps, but not equal to them
    let mut worst = 1.0f64;
    for e in 0..20 {
        for v in 0..2 {
            assert_ne!(int8.row(e, v), float.row(e, v), "entry {e} view {v}");
            worst = worst.min(cosine(int8.row(e, v), float.row(e, v)));
        }
    }
    eprintln!("worst cosine of an int8 map to its float map: {worst:.4}");
    assert!(
        worst > 0.95,
        "worst cosine of an int8 map to its float map: {worst}"
    );

    // a later build over more images reuses the folder: the first build's ranges, its rows
    let more = build(FrontPrecision::Int8, &all);
    let folder = folders
        .iter()
        .find(|f| quantized(&std::fs::read(f.join("frozen.onnx")).unwrap()))
        .unwrap();
    assert_eq!(
        std::fs::read(folder.join("frozen.onnx")).unwrap(),
        int8_graph
    );
    for e in 0..20 {
        assert_eq!(more.row(e, 1), int8.row(e, 1), "entry {e}");
    }
    for e in 20..40 {
        assert!(cosine(more.row(e, 0), float.row(e, 0)) > 0.95, "entry {e}");
    }
}
