//! Training on real photos from ../shared/data: the trainable network computes what the model
//! computes, a saved model embeds like the network it came from, an interrupted run resumes to
//! exactly the same weights, an unreadable image is skipped and counted, the configured
//! validation score chooses the model kept, and a task's own temperature sets its softmax.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use unisight_core::Architecture;
use unisight_embed::OrtEmbedder;
use unisight_model::{UnifiedModel, Weights};
use unisight_train::config::{TrainConfig, ValidationMetric};
use unisight_train::network::{Network, NetworkInput, TrainFrom};
use unisight_train::trainer::{train, TrainOptions};

fn grocery() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/grocery-store/dataset");
    dir.is_dir().then_some(dir)
}

fn ort() {
    let lib =
        unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir()).unwrap();
    unisight_embed::init_onnxruntime(&lib).unwrap();
}

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

fn small_config(dir: &Path, root: &Path, steps: usize, train_from: &str) -> TrainConfig {
    // 30 store photos of 3 products (10 each), plus one corrupt file, as a JSONL manifest
    let text = std::fs::read_to_string(root.join("train.txt")).unwrap();
    let mut rows = Vec::new();
    for class in ["0", "1", "2"] {
        for line in text
            .lines()
            .filter(|l| l.split(',').nth(1).map(str::trim) == Some(class))
            .take(10)
        {
            let rel = line.split(',').next().unwrap();
            let name = rel.replace('/', "_");
            std::fs::copy(root.join(rel), dir.join(&name)).unwrap();
            rows.push(format!("{{\"path\": \"{name}\", \"label\": \"p{class}\"}}"));
        }
    }
    std::fs::write(
        dir.join("broken.jpg"),
        b"\xff\xd8\xff\xe0 not really a jpeg",
    )
    .unwrap();
    rows.push("{\"path\": \"broken.jpg\", \"label\": \"p0\"}".into());
    std::fs::write(dir.join("train.jsonl"), rows.join("\n")).unwrap();
    std::fs::write(dir.join("val.jsonl"), rows[..rows.len() - 1].join("\n")).unwrap();
    let toml = format!(
        r#"
seed = 9
[model]
architecture = "lite0"
dim = 128
train_from = "{train_from}"
[train]
batch_size = 8
steps = {steps}
views = 2
warmup_steps = 2
checkpoint_every = 100
validate_every = 3
[datasets.photos]
kind = "manifest"
root = "."
[[tasks]]
proxies = "sampled"
proxy_budget = 2
name = "products"
sources = ["photos"]
label = "label"
[tasks.eval]
queries = "photos:val"
gallery = "self"
validation = "photos:val"
k = [1, 2]
"#
    );
    let path = dir.join("tasks.toml");
    std::fs::write(&path, toml).unwrap();
    TrainConfig::load(&path).unwrap()
}

fn options(dir: &Path, name: &str, stop_after: Option<usize>) -> TrainOptions {
    TrainOptions {
        out: dir.join(format!("{name}.safetensors")),
        work_dir: dir.join(format!("{name}.run")),
        cache_dir: dir.join("cache"),
        progress: false,
        stop_after,
    }
}

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

#[test]
fn validation_that_counts_map_at_r_chooses_the_kept_step() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = small_config(dir.path(), &root, 6, "head");
    config.train.validation_metric = ValidationMetric::RecallAndMap;
    let report = train(&config, &options(dir.path(), "both", None)).unwrap();
    let history: unisight_train::trainer::History =
        serde_json::from_slice(&std::fs::read(dir.path().join("both.run/history.json")).unwrap())
            .unwrap();
    let score = |step, metric| history.validation_score_at(step, metric).unwrap();
    let (best_step, best) = [0, 3, 6]
        .into_iter()
        .map(|step| (step, score(step, ValidationMetric::RecallAndMap)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    // the two scores differ here, so a trainer that ignored the setting would keep another score
    assert_ne!(best, score(best_step, ValidationMetric::Recall));
    let chosen = report.chosen.expect("validation chose a step");
    assert_eq!(chosen.step, best_step, "{chosen:?}");
    assert!((chosen.score - best).abs() < 1e-12, "{chosen:?} vs {best}");
    assert!(report.eval.iter().all(|e| e.step == best_step));
}

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

#[test]
fn shipped_task_files_parse() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.tasks.is_empty());
            // what a run writes as its resolved task file parses back to the same config
            let text =
                toml::to_string(&config).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let back: TrainConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
            assert_eq!(
                serde_json::to_value(&back).unwrap(),
                serde_json::to_value(&config).unwrap(),
                "{}",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 5, "{n} task files");
    // every shipped sweep grid gives task files that load, point by point
    let grid = unisight_train::sweep::Grid::load(&dir.join("sweeps/task-subsets.toml")).unwrap();
    let points = grid.points();
    assert_eq!(points.len(), 15, "every non-empty subset of four tasks");
    for point in points {
        let config = TrainConfig::load_with_overrides(&dir.join("unified-four.toml"), None, &point)
            .unwrap_or_else(|e| panic!("{point:?}: {e}"));
        assert!(!config.tasks.is_empty() && config.tasks.len() <= 4);
    }
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

/// The trunk cache is one folder per frozen front, augmentation and seed, shared by runs over
/// other image lists: a run over more images computes only the new ones, with the same rows a
/// fresh build gives; an evaluation-only use (one view) of cached images computes nothing; an
/// unreadable image is reported and never stored.
#[test]
fn trunk_cache_is_shared_across_image_lists_and_equal_to_a_fresh_build() {
    use unisight_train::cache::{self, CacheEntry};
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    ort();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(dir.path(), &root, 1, "block14");
    let model =
        UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 128, 9, &Device::flex()).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    // the readable photos in name order, then the broken file
    files.sort_by_key(|f| (f.ends_with("broken.jpg"), f.clone()));
    let entries: Vec<CacheEntry> = files
        .iter()
        .map(|f| CacheEntry {
            key: format!("photos/{}", f.file_name().unwrap().to_string_lossy()),
            file: f.clone(),
            views: 2,
        })
        .collect();
    let build = |cache: &Path, entries: &[CacheEntry]| {
        cache::build(
            cache,
            &model,
            TrainFrom::Block(14).into(),
            entries,
            &config.augment,
            9,
            false,
        )
        .unwrap()
    };
    let chunks = |cache: &Path| -> usize {
        walk(cache)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .count()
    };
    let shared = dir.path().join("shared-cache");
    let half = build(&shared, &entries[..12]);
    assert_eq!(half.failures.len(), 0);
    let before = chunks(&shared);
    let all = build(&shared, &entries);
    let after = chunks(&shared);
    assert!(after > before, "the new images were committed");
    assert_eq!(all.failures.len(), 1, "{:?}", all.failures);
    assert!(all.failures[0].0.ends_with("broken.jpg"));
    let fresh = build(&dir.path().join("fresh-cache"), &entries);
    for e in 0..entries.len() {
        assert_eq!(all.is_ok(e), fresh.is_ok(e));
        for v in 0..2 {
            assert_eq!(all.row(e, v), fresh.row(e, v), "entry {e} view {v}");
        }
    }
    assert_ne!(all.row(0, 0), all.row(0, 1), "view 1 is augmented");
    // the plain view of every cached image serves an evaluation set without new work
    let plain: Vec<CacheEntry> = entries
        .iter()
        .map(|e| CacheEntry {
            views: 1,
            ..e.clone()
        })
        .collect();
    let eval = build(&shared, &plain);
    assert_eq!(chunks(&shared), after, "nothing computed again");
    assert_eq!(eval.row(3, 0), fresh.row(3, 0));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
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

/// `[tasks.distill]`: a model trained with a teacher's neighbourhoods among the task's images
/// ends nearer to them (KL over all 30 photos, a different D from the teacher's) than the same
/// run without; a teacher whose frozen front is not the run's, or that cannot be read, is
/// refused naming the key.
#[test]
fn a_distilled_task_takes_on_the_teachers_neighbourhoods() {
    let Some(root) = grocery() else {
        return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut teacher_config = small_config(dir.path(), &root, 12, "head");
    teacher_config.seed = 3;
    train(&teacher_config, &options(dir.path(), "teacher", None)).unwrap();
    let teacher_file = dir.path().join("teacher.safetensors");

    let mut plain = small_config(dir.path(), &root, 24, "head");
    plain.model.dim = 64;
    plain.train.lr = 0.005;
    // the last step of each, so that validation's choice does not pick an earlier one
    plain.train.keep = unisight_train::config::KeepModel::Last;
    let mut distilled = plain.clone();
    distilled.tasks[0].distill = Some(unisight_train::config::DistillConfig {
        teacher: teacher_file.clone(),
        weight: 20.0,
        temperature: Some(0.1),
    });
    train(&plain, &options(dir.path(), "plain", None)).unwrap();
    train(&distilled, &options(dir.path(), "distilled", None)).unwrap();
    let history: unisight_train::trainer::History = serde_json::from_slice(
        &std::fs::read(dir.path().join("distilled.run/history.json")).unwrap(),
    )
    .unwrap();
    assert!(history
        .steps
        .iter()
        .all(|s| s.distill.len() == 1 && s.distill[0].is_some_and(|d| d.is_finite() && d >= 0.0)));

    // every readable photo, embedded by each saved model on the whole image
    let device = Device::flex();
    let paths: Vec<PathBuf> = std::fs::read_to_string(dir.path().join("val.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            dir.path().join(v["path"].as_str().unwrap())
        })
        .collect();
    let embed = |name: &str| {
        let model =
            UnifiedModel::load(&dir.path().join(format!("{name}.safetensors")), &device).unwrap();
        let size = model.spec.input_size;
        let mut px = vec![0f32; paths.len() * 3 * size * size];
        for (path, chunk) in paths.iter().zip(px.chunks_exact_mut(3 * size * size)) {
            let img = unisight_data::decode::load_rgb(path, &Default::default()).unwrap();
            unisight_data::preprocess::to_input(&img, size, model.spec.preprocess, chunk);
        }
        model.forward(model.input(&px, paths.len())).normalized
    };
    let teacher = embed("teacher");
    let kl = |name: &str| {
        unisight_train::loss::relational_distillation(&embed(name), &teacher, 0.1, &[], &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[0]
    };
    let (without, with) = (kl("plain"), kl("distilled"));
    eprintln!("KL to the teacher: {with} with distillation, {without} without");
    assert!(
        with < 0.8 * without,
        "KL to the teacher: {with} with distillation, {without} without"
    );

    // a teacher trained from block 14 changed blocks 14-15, which this run keeps frozen
    let mut deeper = small_config(dir.path(), &root, 2, "block14");
    deeper.seed = 3;
    train(&deeper, &options(dir.path(), "deeper", None)).unwrap();
    let mut refused = distilled.clone();
    refused.tasks[0].distill.as_mut().unwrap().teacher = dir.path().join("deeper.safetensors");
    let e = train(&refused, &options(dir.path(), "refused", None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tasks[0].distill.teacher") && e.contains("frozen front differs"),
        "{e}"
    );
    refused.tasks[0].distill.as_mut().unwrap().teacher = dir.path().join("missing.safetensors");
    let e = train(&refused, &options(dir.path(), "refused", None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tasks[0].distill.teacher") && e.contains("missing.safetensors"),
        "{e}"
    );
}
