//! The exported ONNX graph run by ONNX Runtime must match the burn model to 1e-4, for every
//! output, on Lite0 with a projection and on Lite2 (260 px input: odd feature-map sizes exercise
//! the asymmetric TF-SAME padding).

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use unisight_core::Architecture;
use unisight_embed::{init_onnxruntime, OrtEmbedder};
use unisight_model::efficientnet::values_of;
use unisight_model::{assets, onnx, UnifiedModel};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn check(arch: Architecture, dim: usize, batch: usize) {
    let dir = assets::assets_dir();
    let library = assets::onnxruntime_path(&dir).expect("run scripts/fetch-assets.sh");
    init_onnxruntime(&library).unwrap();
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(arch, dim, 7, &device).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.onnx");
    onnx::export_to_file(&model, &path).unwrap();
    let s = model.spec.input_size;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    // pixel-like values: (x - 127) / 128 for x in 0..=255
    let pixels: Vec<f32> = (0..batch * 3 * s * s)
        .map(|_| (rng.gen_range(0..=255) as f32 - 127.0) / 128.0)
        .collect();
    let burn_out = model.forward(model.input(&pixels, batch));
    let mut ort = OrtEmbedder::new(&path, model.spec.clone(), 0).unwrap();
    let got = ort
        .run_outputs(
            &pixels,
            batch,
            &[
                onnx::OUTPUT_FEATURES,
                onnx::OUTPUT_PROJECTED,
                onnx::OUTPUT_EMBEDDING,
            ],
        )
        .unwrap();
    let expected = [
        values_of(burn_out.features).1,
        values_of(burn_out.projected).1,
        values_of(burn_out.normalized).1,
    ];
    for (name, (g, e)) in ["features", "projected", "embedding"]
        .iter()
        .zip(got.iter().zip(&expected))
    {
        let d = max_diff(g, e);
        println!("{arch:?} D={dim} {name}: max |diff| {d:.2e}");
        assert!(d < 1e-4, "{arch:?} {name}: {d}");
    }
}

#[test]
fn lite0_with_projection_matches_burn() {
    check(Architecture::EfficientnetLite0, 256, 3);
}

#[test]
fn lite2_matches_burn() {
    check(Architecture::EfficientnetLite2, 1280, 2);
}
