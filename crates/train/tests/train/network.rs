//! The trainable network against the model it becomes: the folded tail equals the whole model
//! on ONNX Runtime, a saved model embeds like the network it came from, and a full fine-tune
//! from pixels trains the stem.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use unisight_core::Architecture;
use unisight_embed::OrtEmbedder;
use unisight_model::{UnifiedModel, Weights};
use unisight_train::network::{Network, NetworkInput, TrainFrom};
use unisight_train::trainer::train;

use super::{grocery, options, ort, small_config};

fn pixels(root: &Path, n: usize, size: usize) -> Vec<f32> {
    let text = std::fs::read_to_string(root.join("test.txt")).unwrap();
    let mut out = vec![0f32; n * 3 * size * size];
    for (line, chunk) in text
        .lines()
        .step_by(97)
        .zip(out.chunks_exact_mut(3 * size * size))
    {
        let path = root.join(line.split(',').next().unwrap());
        let img = unisight_data::decode::load_rgb(&path, &Default::default()).unwrap();
        unisight_data::preprocess::to_input(&img, size, unisight_core::Preprocess::Tf127, chunk);
    }
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Frozen front on ONNX Runtime + trainable tail in burn = the whole model on ONNX Runtime; and
/// after changing the tail, the saved model (batch norms written back) still equals the pair.
#[test]
fn folded_tail_matches_the_model_and_survives_saving() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    ort();
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 256, 5, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = 3;
    let px = pixels(&root, n, 224);
    let full = dir.path().join("full.onnx");
    unisight_model::onnx::export_to_file(&model, &full).unwrap();
    let want = OrtEmbedder::new(&full, model.spec.clone(), 0)
        .unwrap()
        .run_outputs(&px, n, &["projected"])
        .unwrap()
        .remove(0);
    let prefix = dir.path().join("prefix.onnx");
    std::fs::write(
        &prefix,
        unisight_model::onnx::export_prefix(&model, 14).unwrap(),
    )
    .unwrap();
    let map = OrtEmbedder::new(&prefix, model.spec.clone(), 0)
        .unwrap()
        .run_outputs(&px, n, &["map"])
        .unwrap()
        .remove(0);
    let weights = model.to_weights();
    let mut net = Network::from_weights(
        &weights,
        Architecture::EfficientnetLite0,
        TrainFrom::Block(14),
        256,
        vec![],
        &device,
    )
    .unwrap();
    let input = || {
        NetworkInput::Map(Tensor::from_data(
            TensorData::new(map.clone(), [n, 192, 7, 7]),
            &device,
        ))
    };
    let got = unisight_model::efficientnet::values_of(net.forward(input()).projected).1;
    let d = max_diff(&got, &want);
    assert!(d < 2e-4, "folded tail vs whole model: {d}");

    // perturb the tail, save it into a model file, and compare the reloaded model with the pair
    let w = net.blocks[1].project.conv.weight.val();
    net.blocks[1].project.conv.weight =
        burn::module::Param::from_tensor(w.clone() + w.clone().sign() * 0.01);
    let b = net
        .head_conv
        .as_ref()
        .unwrap()
        .conv
        .bias
        .as_ref()
        .unwrap()
        .val();
    net.head_conv.as_mut().unwrap().conv.bias = Some(burn::module::Param::from_tensor(b + 0.05));
    let tail = unisight_model::efficientnet::values_of(net.forward(input()).projected).1;
    assert!(
        max_diff(&tail, &want) > 1e-2,
        "the perturbation changes the output"
    );
    let mut saved: Weights = weights.clone();
    net.write_weights(&mut saved);
    let reloaded = UnifiedModel::from_weights(
        unisight_core::ModelSpec {
            projection: unisight_core::Projection::Trained,
            ..model.spec.clone()
        },
        &saved,
        &device,
    )
    .unwrap();
    let out = reloaded.forward(reloaded.input(&px, n));
    let d = max_diff(
        &unisight_model::efficientnet::values_of(out.projected).1,
        &tail,
    );
    assert!(d < 2e-4, "saved model vs trained tail: {d}");
}

/// Full fine-tune from pixels (for a GPU machine; two short steps here): every part of the
/// trunk trains, after the warm-up, and unreadable images are skipped as in cached mode.
#[test]
fn full_fine_tune_from_pixels_trains_the_stem() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), &root, 2, "stem");
    config.train.warmup_steps = Some(0);
    config.train.batch_size = 4;
    config.train.validate_every = 0;
    let report = train(&config, &options(dir.path(), "full", None)).unwrap();
    assert_eq!(report.steps, 2);
    assert_eq!(report.skipped_images.len(), 1);
    let (_, trained) =
        unisight_model::model_file::read(&dir.path().join("full.safetensors")).unwrap();
    let before = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &Device::flex())
        .unwrap()
        .to_weights();
    assert_ne!(
        trained.tensors["_conv_stem.weight"],
        before.tensors["_conv_stem.weight"]
    );
    assert_ne!(
        trained.tensors["_blocks.0._depthwise_conv.weight"],
        before.tensors["_blocks.0._depthwise_conv.weight"]
    );
}
