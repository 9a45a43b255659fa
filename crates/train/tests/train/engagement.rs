//! Training from an engagement log, evaluated on human labels.

use burn::tensor::Device;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::config::TrainConfig;
use unisight_train::trainer::train;

use super::{grocery, options, small_config};

/// Train from a (simulated) engagement log, evaluate on the human labels: the whole path.
#[test]
fn trains_from_simulated_engagement_and_evaluates_on_human_labels() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), &root, 4, "head");
    // baseline embeddings of the labelled photos, by the zero-shot model
    let photos = config.datasets["photos"].list("val").unwrap();
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 1, &device).unwrap();
    let mut px = vec![0f32; photos.len() * 3 * 224 * 224];
    for (im, chunk) in photos.iter().zip(px.chunks_exact_mut(3 * 224 * 224)) {
        let img = unisight_data::decode::load_rgb(&im.file, &Default::default()).unwrap();
        unisight_data::preprocess::to_input(&img, 224, unisight_core::Preprocess::Tf127, chunk);
    }
    let emb = unisight_model::efficientnet::values_of(
        model.forward(model.input(&px, photos.len())).normalized,
    )
    .1;
    let paths: Vec<String> = photos.iter().map(|p| p.id.clone()).collect();
    let labels: Vec<String> = photos.iter().map(|p| p.labels["label"].clone()).collect();
    let sim = unisight_train::simulate::SimulationConfig {
        searches: 300,
        shown: 10,
        ..Default::default()
    };
    let log = unisight_train::simulate::simulate_engagement(&paths, &labels, &emb, 128, &sim);
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let text: String = log
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    std::fs::write(dir.path().join("logs/clicks.jsonl"), text).unwrap();

    let toml = std::fs::read_to_string(dir.path().join("tasks.toml"))
        .unwrap()
        .replace(
            "[[tasks]]\nproxies = \"sampled\"\nproxy_budget = 2\nname = \"products\"\nsources = [\"photos\"]\nlabel = \"label\"\n[tasks.eval]",
            "[datasets.engaged]\nkind = \"engagement\"\nroot = \".\"\nlogs = \"logs\"\ntrain_splits = [\"clicks\"]\nengagement_rule = { min_score = 2.0, max_class_size = 10 }\n\
             [[tasks]]\nname = \"engagement\"\nsources = [\"engaged\"]\nlabel = \"engagement\"\n[tasks.eval]\nlabel = \"label\"",
        );
    assert!(toml.contains("kind = \"engagement\""));
    std::fs::write(dir.path().join("engagement.toml"), toml).unwrap();
    let config = TrainConfig::load(&dir.path().join("engagement.toml")).unwrap();
    let set = unisight_train::plan::TrainingSet::load(&config).unwrap();
    assert!(set.tasks[0].classes.len() >= 2, "the log makes classes");
    assert!(set.images.len() > 10, "most photos were engaged with");
    let report = train(&config, &options(dir.path(), "engaged", None)).unwrap();
    let e = &report.eval[0];
    assert_eq!(
        (e.task.as_str(), e.gallery.as_str()),
        ("engagement", "self")
    );
    assert!(
        e.recall_float[0] > 0.3,
        "human-label recall {:?}",
        e.recall_float
    );
}
