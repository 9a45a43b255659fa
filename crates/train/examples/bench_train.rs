//! Training-step benchmarks (numbers for the README; not a test).
//!
//! `cargo run --release -p unisight-train --example bench_train -- trunk`:
//!   images/s of one training step (forward + backward + AdamW) at batch 64, per starting point
//!   of the trainable part: what the cached-trunk mode costs against training more of the trunk
//!   (block1 = every block after the stem, the nearest to a full fine-tune on cached inputs).
//! `... -- cache DATA_DIR [IMAGES] [VIEWS]`:
//!   views/s of the trunk cache (blocks 0-13 of Lite0, the quality bar's front) on Grocery Store
//!   training photos, end to end into a fresh folder, and of its two halves alone: decoding and
//!   rendering the views (every core), and the frozen graph on ONNX Runtime (batch 32); then a
//!   second build over the same images, as another run or task file sharing them does; then the
//!   int8 front (`model.front_precision = "int8"`), end to end with its calibration and alone.
//! `... -- proxies full|sampled [CLASSES] [BUDGET]`:
//!   ms/step and peak memory of the head (projection + proxies) with 1,000,000 classes, softmax
//!   over all proxies vs the batch's positives plus sampled negatives (8,192). Run each mode in
//!   its own process so the peak memory is its own.
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::TensorData;
use burn::tensor::{Device, Distribution, Tensor};
use rand::{Rng, SeedableRng};
use unisight_core::Architecture;
use unisight_model::UnifiedModel;
use unisight_train::config::OptimizerKind;
use unisight_train::loss::{
    normalized_softmax, proxy_subset, softmax_over_subset, ProxySet, TaskTargets,
};
use unisight_train::network::{Network, NetworkInput, TrainFrom};
use unisight_train::sparse::{SparseBank, SparseOptim};

const BATCH: usize = 64;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn step(
    net: Network,
    optim: &mut burn::optim::ModuleOptimizer,
    input: NetworkInput,
    classes: usize,
    set: ProxySet,
    rng: &mut rand_chacha::ChaCha8Rng,
    device: &Device,
) -> Network {
    let out = net.forward(input);
    let targets = TaskTargets {
        rows: (0..BATCH).collect(),
        labels: (0..BATCH).map(|_| rng.gen_range(0..classes)).collect(),
        weights: vec![],
    };
    let loss = normalized_softmax(
        &out.normalized,
        net.proxies[0].val(),
        &targets,
        0.05,
        set,
        rng,
        device,
    );
    let grads = GradientsParams::from_grads(loss.backward(), &net);
    let net = optim.step(1e-3, net, grads);
    let _ = net.projection.val().into_data();
    net
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let device = Device::flex().autodiff();
    let base = UnifiedModel::zero_shot(Architecture::EfficientnetLite0, 256, 1, &Device::flex())
        .expect("assets (scripts/fetch-assets.sh)");
    let weights = base.to_weights();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    match args.first().map(String::as_str) {
        Some("trunk") => {
            println!(
                "| trainable from | input | ms/step (batch {BATCH}) | img/s |\n|---|---|---|---|"
            );
            for (from, shape) in [
                (TrainFrom::Pooled, vec![BATCH, 1280]),
                (TrainFrom::HeadConv, vec![BATCH, 320, 7, 7]),
                (TrainFrom::Block(15), vec![BATCH, 192, 7, 7]),
                (TrainFrom::Block(14), vec![BATCH, 192, 7, 7]),
                (TrainFrom::Block(11), vec![BATCH, 112, 14, 14]),
                (TrainFrom::Block(1), vec![BATCH, 16, 112, 112]),
            ] {
                let proxies = vec![(0, 81, vec![0.01f32; 81 * 256])];
                let mut net = Network::from_weights(
                    &weights,
                    Architecture::EfficientnetLite0,
                    from,
                    256,
                    proxies,
                    &device,
                )
                .unwrap();
                let mut optim = AdamWConfig::new().with_epsilon(1e-8).init();
                let mut times = vec![];
                for _ in 0..4 {
                    let input = if shape.len() == 2 {
                        NetworkInput::Pooled(Tensor::<2>::random(
                            [shape[0], shape[1]],
                            Distribution::Uniform(0.0, 1.0),
                            &device,
                        ))
                    } else {
                        NetworkInput::Map(Tensor::<4>::random(
                            [shape[0], shape[1], shape[2], shape[3]],
                            Distribution::Uniform(0.0, 1.0),
                            &device,
                        ))
                    };
                    let t = Instant::now();
                    net = step(net, &mut optim, input, 81, ProxySet::All, &mut rng, &device);
                    times.push(t.elapsed().as_secs_f64());
                }
                // the first step warms up allocations
                let ms = times[1..].iter().sum::<f64>() / 3.0 * 1000.0;
                let name: String = from.into();
                println!(
                    "| {name} | {:?} | {ms:.0} | {:.1} |",
                    &shape[1..],
                    BATCH as f64 / ms * 1000.0
                );
            }
        }
        Some("proxies") => {
            let mode = args.get(1).map(String::as_str).unwrap_or("sampled");
            let classes: usize = args
                .get(2)
                .and_then(|s| s.parse().ok())
                .unwrap_or(1_000_000);
            let budget: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8192);
            let mut prng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            let values: Vec<f32> = (0..classes * 256)
                .map(|_| prng.gen_range(-1.0..1.0))
                .collect();
            let mut optim = AdamWConfig::new().with_epsilon(1e-8).init();
            let mut times = vec![];
            let before;
            if mode == "full" {
                // a dense bank in the network, AdamW over all of it
                let mut net = Network::from_weights(
                    &weights,
                    Architecture::EfficientnetLite0,
                    TrainFrom::Pooled,
                    256,
                    vec![(0, classes, values)],
                    &device,
                )
                .unwrap();
                before = peak_rss_mib();
                for _ in 0..6 {
                    let input = NetworkInput::Pooled(Tensor::<2>::random(
                        [BATCH, 1280],
                        Distribution::Uniform(0.0, 1.0),
                        &device,
                    ));
                    let t = Instant::now();
                    net = step(
                        net,
                        &mut optim,
                        input,
                        classes,
                        ProxySet::All,
                        &mut rng,
                        &device,
                    );
                    times.push(t.elapsed().as_secs_f64());
                }
            } else {
                // what training does with `proxies = "sampled"`: a sparse bank, rows gathered
                // into the graph and updated by lazy AdamW
                let mut net = Network::from_weights(
                    &weights,
                    Architecture::EfficientnetLite0,
                    TrainFrom::Pooled,
                    256,
                    vec![],
                    &device,
                )
                .unwrap();
                let mut bank = SparseBank::new(classes, 256, values);
                let sparse = SparseOptim {
                    kind: OptimizerKind::Adamw,
                    weight_decay: 1e-4,
                    momentum: 0.9,
                };
                before = peak_rss_mib();
                for _ in 0..6 {
                    let input = NetworkInput::Pooled(Tensor::<2>::random(
                        [BATCH, 1280],
                        Distribution::Uniform(0.0, 1.0),
                        &device,
                    ));
                    let t = Instant::now();
                    let out = net.forward(input);
                    let targets = TaskTargets {
                        rows: (0..BATCH).collect(),
                        labels: (0..BATCH).map(|_| rng.gen_range(0..classes)).collect(),
                        weights: vec![],
                    };
                    let subset = proxy_subset(
                        &targets.labels,
                        classes,
                        ProxySet::Sampled { budget },
                        &mut rng,
                    );
                    let leaf = Tensor::<2>::from_data(
                        TensorData::new(bank.gather(&subset), [subset.len(), 256]),
                        &device,
                    )
                    .require_grad();
                    let loss = softmax_over_subset(
                        &out.normalized,
                        leaf.clone(),
                        &subset,
                        &targets,
                        0.05,
                        &device,
                    );
                    let raw = loss.backward();
                    let grad = unisight_model::efficientnet::values_of(leaf.grad(&raw).unwrap()).1;
                    bank.update(&subset, &grad, 1e-3, &sparse);
                    let grads = GradientsParams::from_grads(raw, &net);
                    net = optim.step(1e-3, net, grads);
                    let _ = net.projection.val().into_data();
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            let ms = times[1..].iter().sum::<f64>() / 5.0 * 1000.0;
            println!(
                "{classes} classes, {mode} softmax{}: {ms:.0} ms/step (batch {BATCH}), peak RSS {:.0} MiB (after building the proxies: {before:.0} MiB)",
                if mode == "full" { String::new() } else { format!(" ({budget} proxies, sparse bank)") },
                peak_rss_mib()
            );
        }
        Some("cache") => bench_cache(&base, &args[1..]),
        _ => eprintln!(
            "usage: bench_train trunk | cache DATA_DIR [IMAGES] [VIEWS] | proxies full|sampled [CLASSES] [BUDGET]"
        ),
    }
}

fn bench_cache(model: &UnifiedModel, args: &[String]) {
    use rayon::prelude::*;
    use unisight_train::cache::{self, CacheEntry};
    let data = std::path::PathBuf::from(args.first().expect("DATA_DIR"));
    let images: usize = args.get(1).map_or(512, |s| s.parse().expect("IMAGES"));
    let views: usize = args.get(2).map_or(6, |s| s.parse().expect("VIEWS"));
    let root = data.join("grocery-store/dataset");
    let list = std::fs::read_to_string(root.join("train.txt")).expect("grocery train.txt");
    let entries: Vec<CacheEntry> = list
        .lines()
        .take(images)
        .map(|line| {
            let file = root.join(line.split(',').next().expect("a path"));
            CacheEntry {
                key: file.display().to_string(),
                file,
                views,
            }
        })
        .collect();
    let augment = unisight_train::config::AugmentConfig::default();
    let size = model.spec.input_size;
    let total_views = entries.len() * views;

    let t = Instant::now();
    let pixels: Vec<Vec<f32>> = entries
        .par_iter()
        .map(|e| {
            let image =
                unisight_data::decode::load_rgb(&e.file, &Default::default()).expect("readable");
            let mut px = vec![0f32; views * 3 * size * size];
            for (v, out) in px.chunks_exact_mut(3 * size * size).enumerate() {
                cache::render_view(
                    &image,
                    &e.key,
                    v,
                    &augment,
                    1,
                    size,
                    model.spec.preprocess,
                    out,
                );
            }
            px
        })
        .collect();
    let render = total_views as f64 / t.elapsed().as_secs_f64();

    let lib = unisight_model::assets::onnxruntime_path(&unisight_model::assets::assets_dir())
        .expect("onnxruntime");
    unisight_embed::init_onnxruntime(&lib).expect("onnxruntime loads");
    let dir = tempfile::tempdir().expect("temp dir");
    let graph = dir.path().join("front.onnx");
    std::fs::write(
        &graph,
        unisight_model::onnx::export_prefix(model, 14).expect("export"),
    )
    .expect("write");
    let mut ort = unisight_embed::OrtEmbedder::new(&graph, model.spec.clone(), 0).expect("session");
    let flat: Vec<f32> = pixels.concat();
    let t = Instant::now();
    for batch in flat.chunks(32 * 3 * size * size) {
        let n = batch.len() / (3 * size * size);
        ort.run_outputs(batch, n, &["map"]).expect("runs");
    }
    let infer = total_views as f64 / t.elapsed().as_secs_f64();
    drop(ort);
    // the same work on one session per core, each with one intra-op thread and its own batches
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut sessions: Vec<_> = (0..cores)
        .map(|_| unisight_embed::OrtEmbedder::new(&graph, model.spec.clone(), 1).expect("session"))
        .collect();
    let batches: Vec<&[f32]> = flat.chunks(32 * 3 * size * size).collect();
    let t = Instant::now();
    std::thread::scope(|scope| {
        for (s, ort) in sessions.iter_mut().enumerate() {
            let batches = &batches;
            scope.spawn(move || {
                for batch in batches.iter().skip(s).step_by(cores) {
                    let n = batch.len() / (3 * size * size);
                    ort.run_outputs(batch, n, &["map"]).expect("runs");
                }
            });
        }
    });
    let infer_sessions = total_views as f64 / t.elapsed().as_secs_f64();
    drop(sessions);

    // views/s of one build into a cache folder of the bench's, float or int8 front
    use unisight_train::config::FrontPrecision;
    let timed_build = |folder: &str, precision| {
        let t = Instant::now();
        let front = cache::CachedFront {
            train_from: TrainFrom::Block(14),
            precision,
        };
        cache::build(
            &dir.path().join(folder),
            model,
            front,
            &entries,
            &augment,
            1,
            false,
        )
        .expect("cache builds");
        total_views as f64 / t.elapsed().as_secs_f64()
    };
    let whole = timed_build("cache", FrontPrecision::Float32);
    // another run (another task file) over the same images: served from the folder
    let again = timed_build("cache", FrontPrecision::Float32);
    // the int8 front: calibrated and built end to end, then its graph alone on the same pixels
    let whole_int8 = timed_build("cache-int8", FrontPrecision::Int8);
    let int8_graph = std::fs::read_dir(dir.path().join("cache-int8"))
        .expect("int8 cache folder")
        .map(|e| e.expect("entry").path().join("frozen.onnx"))
        .find(|p| p.exists())
        .expect("the int8 build installed its graph");
    let mut ort =
        unisight_embed::OrtEmbedder::new(&int8_graph, model.spec.clone(), 0).expect("session");
    let t = Instant::now();
    for batch in flat.chunks(32 * 3 * size * size) {
        let n = batch.len() / (3 * size * size);
        ort.run_outputs(batch, n, &["map"]).expect("runs");
    }
    let infer_int8 = total_views as f64 / t.elapsed().as_secs_f64();
    println!(
        "{} images x {views} views: decode + render {render:.1} views/s, frozen front on ONNX Runtime {infer:.1} views/s (one session per core, one thread each: {infer_sessions:.1}), cache::build end to end {whole:.1} views/s ({:.2}x the front alone), again on the same images {again:.0} views/s; int8 front alone {infer_int8:.1} views/s ({:.2}x the float front), int8 cache::build end to end (calibration included) {whole_int8:.1} views/s ({:.2}x the float build)",
        entries.len(),
        whole / infer,
        infer_int8 / infer,
        whole_int8 / whole,
    );
}
