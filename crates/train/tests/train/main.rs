//! Training on real photos from ../shared/data, one test binary: the network against the model
//! ([`network`]), resuming ([`resume`]), the model validation keeps ([`selection`]), the proxy
//! softmax ([`proxies`]), distillation ([`distill`]), engagement labels ([`engagement`]), the
//! trunk cache ([`cache`]) and the shipped task files ([`task_files`]).

mod cache;
mod distill;
mod engagement;
mod network;
mod proxies;
mod resume;
mod selection;
mod task_files;

use std::path::{Path, PathBuf};

use unisight_train::config::TrainConfig;
use unisight_train::trainer::TrainOptions;

pub(crate) fn grocery() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/grocery-store/dataset");
    dir.is_dir().then_some(dir)
}

pub(crate) fn ort() {
    let lib =
        unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir()).unwrap();
    unisight_embed::init_onnxruntime(&lib).unwrap();
}

pub(crate) fn small_config(dir: &Path, root: &Path, steps: usize, train_from: &str) -> TrainConfig {
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

pub(crate) fn options(dir: &Path, name: &str, stop_after: Option<usize>) -> TrainOptions {
    TrainOptions {
        out: dir.join(format!("{name}.safetensors")),
        work_dir: dir.join(format!("{name}.run")),
        cache_dir: dir.join("cache"),
        progress: false,
        stop_after,
    }
}
