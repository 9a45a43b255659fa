//! The model file: a zero-shot model saved and loaded gives the same embeddings; damaged or
//! foreign files get errors naming the file and key.

use burn::tensor::Device;
use unisight_core::{Architecture, Projection};
use unisight_model::efficientnet::values_of;
use unisight_model::{model_file, UnifiedModel};

#[test]
fn round_trip_and_bad_files() {
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 11, &device).unwrap();
    assert_eq!(
        model.spec.projection,
        Projection::RandomOrthogonal { seed: 11 }
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    model.save(&path).unwrap();
    let loaded = UnifiedModel::load(&path, &device).unwrap();
    assert_eq!(loaded.spec, model.spec);
    let s = model.spec.input_size;
    let pixels: Vec<f32> = (0..2 * 3 * s * s)
        .map(|i| ((i % 255) as f32 - 127.0) / 128.0)
        .collect();
    let a = values_of(model.forward(model.input(&pixels, 2)).normalized).1;
    let b = values_of(loaded.forward(loaded.input(&pixels, 2)).normalized).1;
    assert_eq!(a, b);

    // a safetensors file without our metadata
    let (spec, mut weights) = model_file::read(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let msg = UnifiedModel::load(&path, &device).unwrap_err().to_string();
    assert!(msg.contains("m.safetensors"), "{msg}");
    // a missing tensor is named
    weights.tensors.remove("_blocks.3._bn1.running_var");
    model_file::write(&path, &spec, &weights).unwrap();
    let msg = UnifiedModel::load(&path, &device).unwrap_err().to_string();
    assert!(msg.contains("_blocks.3._bn1.running_var"), "{msg}");
    let msg = UnifiedModel::load(&dir.path().join("none.safetensors"), &device)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("none.safetensors"), "{msg}");

    // a model with a NaN weight is refused and nothing is written
    let nan_path = dir.path().join("nan.safetensors");
    let name = weights.tensors.keys().next().unwrap().clone();
    weights.tensors.get_mut(&name).unwrap().values[0] = f32::NAN;
    let msg = model_file::write(&nan_path, &spec, &weights)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&name) && msg.contains("non-finite"), "{msg}");
    assert!(!nan_path.exists());
}
