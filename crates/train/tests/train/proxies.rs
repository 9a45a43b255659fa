//! The proxy softmax of a task: where its proxies start (`proxy_init`) and its own temperature.

use burn::tensor::Device;
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::config::TrainConfig;
use unisight_train::trainer::train;

use super::{grocery, options, small_config};

#[test]
fn a_tasks_own_temperature_sets_its_softmax() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), &root, 1, "head");
    config.train.validate_every = 0;
    config.tasks[0].proxies = unisight_train::config::ProxyMode::All;
    let first_loss = |config: &TrainConfig, name: &str| {
        train(config, &options(dir.path(), name, None)).unwrap();
        let history: unisight_train::trainer::History = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("{name}.run/history.json"))).unwrap(),
        )
        .unwrap();
        history.steps[0].losses[0].unwrap()
    };
    // at temperature 10 the logits (cosines / 10) lie within 0.1 of each other, so the softmax
    // over the 3 products is nearly uniform: the loss is ln 3 within 0.2
    let uniform = 3f64.ln();
    let sharp = first_loss(&config, "shared");
    assert!(
        (sharp - uniform).abs() > 0.2,
        "{sharp} at train.temperature"
    );
    config.tasks[0].temperature = Some(10.0);
    let soft = first_loss(&config, "own");
    assert!(
        (soft - uniform).abs() < 0.2,
        "{soft} at the task's temperature 10"
    );
}

/// `proxy_init`: before any step, each class's proxy points at the mean embedding of its images
/// in the named set (computed here independently, by the zero-shot model on the whole image),
/// with a random proxy's length; without it the proxies are random directions.
#[test]
fn proxies_start_at_the_mean_embedding_of_their_proxy_init_images() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), &root, 0, "head");
    let proxies_of = |config: &TrainConfig, name: &str| {
        train(config, &options(dir.path(), name, None)).unwrap();
        let (_, w) =
            unisight_model::model_file::read(&dir.path().join(format!("{name}.safetensors")))
                .unwrap();
        w.tensors["proxies.0"].values.clone()
    };
    let random = proxies_of(&config, "random");
    config.tasks[0].proxy_init = Some("photos:val".into());
    let started = proxies_of(&config, "started");

    // the class centroids of photos:val (val.jsonl: the 30 readable photos, 10 per class)
    let device = Device::flex();
    let model = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &device).unwrap();
    let rows: Vec<(String, String)> = std::fs::read_to_string(dir.path().join("val.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().into(),
                v["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    let size = model.spec.input_size;
    let mut px = vec![0f32; rows.len() * 3 * size * size];
    for ((path, _), chunk) in rows.iter().zip(px.chunks_exact_mut(3 * size * size)) {
        let img =
            unisight_data::decode::load_rgb(&dir.path().join(path), &Default::default()).unwrap();
        unisight_data::preprocess::to_input(&img, size, model.spec.preprocess, chunk);
    }
    let out = model.forward(model.input(&px, rows.len()));
    let embeddings = unisight_model::efficientnet::values_of(out.normalized).1;
    let cosine = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (norm(a) * norm(b))
    };
    // classes are sorted: p0, p1, p2
    for (c, class) in ["p0", "p1", "p2"].iter().enumerate() {
        let mut centroid = vec![0f32; 128];
        for ((_, label), e) in rows.iter().zip(embeddings.chunks(128)) {
            if label == class {
                centroid.iter_mut().zip(e).for_each(|(s, x)| *s += x);
            }
        }
        let proxy = &started[c * 128..(c + 1) * 128];
        let length = proxy.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (length - 128f32.sqrt()).abs() < 1e-3,
            "{class}: length {length}"
        );
        let got = cosine(proxy, &centroid);
        assert!(got > 0.99, "{class}: cos(proxy, centroid) {got}");
        let before = cosine(&random[c * 128..(c + 1) * 128], &centroid);
        assert!(
            before.abs() < 0.5,
            "{class}: a random proxy had cos {before}"
        );
    }
}
