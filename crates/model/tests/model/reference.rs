//! Correctness of the burn trunk against reference outputs computed independently (numpy
//! implementation checked against a separately built ONNX graph): see
//! `../shared/reference/README.md`.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use unisight_core::Architecture;
use unisight_model::efficientnet::values_of;
use unisight_model::UnifiedModel;

fn reference_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
    dir.join("lite0_grocery_reference.npz")
        .exists()
        .then_some(dir)
}

fn read_npz(path: &std::path::Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let mut npz = npyz::npz::NpzArchive::open(path).unwrap();
    let arr = npz.by_name(name).unwrap().unwrap();
    let shape = arr.shape().iter().map(|&d| d as usize).collect();
    (shape, arr.into_vec::<f32>().unwrap())
}

#[test]
fn lite0_matches_reference_features_and_logits() {
    let Some(dir) = reference_dir() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/reference");
    };
    let npz = dir.join("lite0_grocery_reference.npz");
    let (shape, inputs) = read_npz(&npz, "inputs");
    let (_, features) = read_npz(&npz, "features");
    let (_, logits) = read_npz(&npz, "logits");
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 1280, 0, &device)
        .expect("weights present: run scripts/fetch-assets.sh");
    let x = Tensor::<4>::from_data(TensorData::new(inputs, shape.clone()), &device);
    let out = model.forward(x);
    let (_, got_features) = values_of(out.features.clone());
    let (_, got_logits) = values_of(model.trunk.classify(out.features).unwrap());
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let df = max_diff(&got_features, &features);
    let dl = max_diff(&got_logits, &logits);
    println!("max |diff| features {df:.2e}, logits {dl:.2e}");
    assert!(df < 1e-4, "features differ by {df}");
    assert!(dl < 1e-3, "logits differ by {dl}");
    // top-1 as documented in the reference README
    let classes: Vec<String> = std::fs::read_to_string(dir.join("imagenet_classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let top1: Vec<&str> = got_logits
        .chunks(1000)
        .map(|row| {
            let best = (0..1000)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            classes[best].as_str()
        })
        .collect();
    assert_eq!(top1[0], "banana");
    assert_eq!(top1[1], "lemon");
    assert_eq!(top1[3], "banana");
}
