//! An interrupted run resumes to exactly the same weights; an unreadable image is skipped and
//! counted.

use burn::tensor::Device;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::config::{TrainConfig, ValidationMetric};
use unisight_train::trainer::train;

use super::{grocery, options, small_config};

#[test]
fn interrupted_run_resumes_to_the_same_weights_and_skips_bad_images() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), &root, 6, "head");

    let whole = train(&config, &options(dir.path(), "whole", None)).unwrap();
    assert_eq!(whole.steps, 6);
    assert!(!whole.interrupted);
    assert_eq!(whole.skipped_images.len(), 1, "{:?}", whole.skipped_images);
    assert!(whole.skipped_images[0].0.ends_with("broken.jpg"));
    let r1 = whole.eval[0].recall_float[0];
    assert!((0.0..=1.0).contains(&r1));
    // the final evaluation measures MAP@R too
    for map in [whole.eval[0].map_at_r_float, whole.eval[0].map_at_r_bits] {
        assert!(map.is_some_and(|m| (0.0..=1.0).contains(&m)), "{map:?}");
    }
    // the model kept is the best validation's (steps 0, 3 and 6 validated), never the test's
    let history: unisight_train::trainer::History =
        serde_json::from_slice(&std::fs::read(dir.path().join("whole.run/history.json")).unwrap())
            .unwrap();
    let chosen = whole.chosen.expect("validation chose a step");
    let best = [0, 3, 6]
        .into_iter()
        .map(|step| {
            history
                .validation_score_at(step, ValidationMetric::Recall)
                .unwrap()
        })
        .fold(f64::MIN, f64::max);
    assert!((chosen.score - best).abs() < 1e-12, "{chosen:?} vs {best}");
    assert!(whole.eval.iter().all(|e| e.step == chosen.step));
    // validation measures MAP@R as well (`train.validation_metric = "recall-and-map"` counts it)
    assert!(history
        .validation
        .iter()
        .all(|v| v.map_at_r_float.is_some() && v.map_at_r_bits.is_some()));
    for f in [
        "history.json",
        "report.json",
        "loss.png",
        "validation.png",
        "config.toml",
    ] {
        assert!(dir.path().join("whole.run").join(f).is_file(), "{f}");
    }
    // the resolved task file beside the report reads back as the run's config
    let resolved = TrainConfig::load(&dir.path().join("whole.run/config.toml")).unwrap();
    assert_eq!(
        serde_json::to_value(&resolved).unwrap(),
        serde_json::to_value(&config).unwrap()
    );

    let first = train(&config, &options(dir.path(), "split", Some(4))).unwrap();
    assert!(first.interrupted);
    assert_eq!(first.steps, 4);
    assert!(
        !dir.path().join("split.safetensors").exists(),
        "no model before the run ends"
    );
    let second = train(&config, &options(dir.path(), "split", None)).unwrap();
    assert_eq!((second.steps, second.steps_this_run), (6, 2));

    let (_, a) = unisight_model::model_file::read(&dir.path().join("whole.safetensors")).unwrap();
    let (_, b) = unisight_model::model_file::read(&dir.path().join("split.safetensors")).unwrap();
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &a.tensors {
        assert_eq!(
            t.values, b.tensors[name].values,
            "{name} differs after resume"
        );
    }
    // training changed the trained parts and kept the frozen ones
    let (_, before) = {
        let m = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &Device::flex())
            .unwrap();
        (0, m.to_weights())
    };
    assert_eq!(
        a.tensors["_blocks.3._project_conv.weight"],
        before.tensors["_blocks.3._project_conv.weight"]
    );
    assert_ne!(
        a.tensors["_conv_head.weight"],
        before.tensors["_conv_head.weight"]
    );
    assert!(a.contains("proxies.0"));
    let (_, _, tasks) =
        unisight_model::model_file::read_with_tasks(&dir.path().join("whole.safetensors")).unwrap();
    assert!(tasks.unwrap().contains("\"products\""));

    // a different task file does not silently resume someone else's checkpoint
    let mut other = config.clone();
    other.train.lr *= 2.0;
    let err = train(&other, &options(dir.path(), "split", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("different task file"), "{err}");
}
