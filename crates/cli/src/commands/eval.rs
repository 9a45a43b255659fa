//! `unisight eval` and `unisight compare`: sets from a task file (embedded through the embed
//! path, cached per model) or embedding folders, evaluated by the eval library into reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use unisight_core::artifacts::{EmbeddingSet, CODES_FILE, EMBEDDINGS_FILE, META_FILE};
use unisight_core::atomic::atomic_write_bytes;
use unisight_core::{Embedder, FlipAveraged};
use unisight_data::datasets::LabeledImage;
use unisight_data::decode::DecodeLimits;
use unisight_data::sources::Input;
use unisight_embed::EmbedOptions;
use unisight_eval::compare::CompareEntry;
use unisight_eval::evaluate::Settings;
use unisight_eval::labelled::{ItemView, LabelledSet, LeftOut};
use unisight_eval::report::{evaluate_task, peak_rss_bytes, Report, REPORT_FORMAT, REPORT_VERSION};
use unisight_train::config::{SetRef, TrainConfig};

use crate::args::{CompareArgs, EvalArgs};
use crate::embedder::{load_model, make_embedder, Backend};

/// Runs `unisight eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let source = match (&args.model, &args.config, &args.embeddings) {
        (Some(model), Some(config), None) => Source::Model {
            model,
            config,
            data_dir: args.data_dir.as_deref(),
            tasks: &args.tasks,
            cache_dir: &args.cache_dir,
            flip: args.flip,
        },
        (None, _, Some(queries)) => Source::Embeddings {
            queries,
            gallery: args.gallery.as_deref(),
            image_root: args.image_root.as_deref(),
            task: &args.task,
        },
        _ => bail!("give --model with --config, or --embeddings"),
    };
    let settings = Settings {
        ks: Vec::new(),
        map_r_cap: args.map_r_cap,
        nmi_max_items: args.nmi_max_items,
        examples: args.examples,
        seed: args.seed,
        ..Settings::default()
    };
    run_eval(source, args.k, settings, &args.out)
}

/// Runs `unisight compare`.
pub fn compare(args: CompareArgs) -> Result<()> {
    if !(0.0..1.0).contains(&args.level) || args.level <= 0.0 {
        bail!("--level must be between 0 and 1, e.g. 0.95");
    }
    let entries = args
        .models
        .iter()
        .map(|m| read_entry(m))
        .collect::<Result<Vec<_>>>()?;
    let comparison = unisight_eval::compare::compare(
        &entries,
        &args.tasks,
        args.baseline.as_deref(),
        args.resamples,
        args.level,
        args.seed,
    )?;
    comparison.write(&args.out)?;
    print!("{}", comparison.to_markdown());
    eprintln!(
        "wrote {0}/compare.json, compare.md and compare-*.png",
        args.out.display()
    );
    Ok(())
}

/// What `unisight eval` reads.
enum Source<'a> {
    /// A model and a task file: every task's `eval` sets are embedded (cached) and evaluated.
    Model {
        /// Model file.
        model: &'a Path,
        /// Task file.
        config: &'a Path,
        /// Where relative dataset roots are.
        data_dir: Option<&'a Path>,
        /// Only these tasks (all when empty).
        tasks: &'a [String],
        /// Embedding cache.
        cache_dir: &'a Path,
        /// Average each image's embedding with its mirror image's.
        flip: bool,
    },
    /// Embedding folders written by `unisight embed` with labels in `items.jsonl`.
    Embeddings {
        /// Query folder.
        queries: &'a Path,
        /// Gallery folder (leave-one-out within the queries when absent).
        gallery: Option<&'a Path>,
        /// Folder the items' paths are relative to (for thumbnails).
        image_root: Option<&'a Path>,
        /// Task name in the report.
        task: &'a str,
    },
}

/// Runs the evaluation and writes the report, charts and example page into `out`.
fn run_eval(
    source: Source<'_>,
    ks: Option<Vec<usize>>,
    settings: Settings,
    out: &Path,
) -> Result<()> {
    let mut tasks = Vec::new();
    let (model_id, seconds, input_bytes) = match source {
        Source::Model {
            model,
            config,
            data_dir,
            tasks: only,
            cache_dir,
            flip,
        } => {
            let config = TrainConfig::load_with_data_dir(config, data_dir)?;
            let (net, model_id) = load_model(Some(model))?;
            let dim = net.spec.dim;
            let mut embedder = make_embedder(net, &model_id, Backend::Auto, 0)?;
            // the flipped embeddings are another model's: their own cache and report name
            let model_id = if flip {
                embedder = Box::new(FlipAveraged::new(embedder));
                format!("{model_id}+flip")
            } else {
                model_id
            };
            let cache = cache_dir.join(format!("{:08x}", crc32c::crc32c(model_id.as_bytes())));
            let selected: Vec<_> = config
                .tasks
                .iter()
                .filter(|t| only.is_empty() || only.contains(&t.name))
                .filter_map(|t| t.eval.as_ref().map(|e| (t, e)))
                .collect();
            if selected.is_empty() {
                bail!(
                    "no task with an `eval` section{}",
                    if only.is_empty() {
                        ""
                    } else {
                        " among --tasks"
                    }
                );
            }
            if let Some(missing) = only
                .iter()
                .find(|n| !config.tasks.iter().any(|t| &t.name == *n))
            {
                bail!("--tasks: no task named `{missing}` in the task file");
            }
            let mut seconds = 0.0;
            for (task, e) in selected {
                let label = e.label.clone().unwrap_or_else(|| task.label.clone());
                let load = |name: &str, embedder: &mut dyn Embedder| -> Result<LabelledSet> {
                    let set = SetRef::parse(name).with_context(|| format!("set `{name}`"))?;
                    let dataset = &config.datasets[&set.dataset];
                    let images = dataset
                        .list(&set.split)
                        .with_context(|| format!("listing {name}"))?;
                    let dir = cache.join(format!("{}-{}", set.dataset, set.split));
                    let embedded = embed_cached(&images, embedder, &dir, &model_id)?;
                    // the embedding folder's rows, by image id (unreadable images have none)
                    let rows: std::collections::HashMap<&str, usize> = embedded
                        .items
                        .iter()
                        .enumerate()
                        .map(|(row, item)| (item.id.as_str(), row))
                        .collect();
                    Ok(LabelledSet::from_images(
                        name,
                        &images,
                        &label,
                        e.group.as_deref(),
                        |i| {
                            rows.get(images[i].id.as_str())
                                .map(|&row| (embedded.embedding(row), embedded.code(row)))
                        },
                    ))
                };
                let queries = load(&e.queries, embedder.as_mut())?;
                let gallery = if e.gallery == "self" {
                    None
                } else {
                    Some(load(&e.gallery, embedder.as_mut())?)
                };
                let mut s = settings.clone();
                s.ks = ks.clone().unwrap_or_else(|| e.k.clone());
                let started = Instant::now();
                tasks.push(evaluate_task(
                    &task.name,
                    &label,
                    &queries,
                    gallery.as_ref(),
                    dim,
                    &s,
                )?);
                seconds += started.elapsed().as_secs_f64();
            }
            (model_id, seconds, None)
        }
        Source::Embeddings {
            queries,
            gallery,
            image_root,
            task,
        } => {
            let read = |dir: &Path| -> Result<(LabelledSet, usize)> {
                let set = EmbeddingSet::load(dir)
                    .with_context(|| format!("reading embeddings from {}", dir.display()))?;
                let dim = set.dim;
                Ok((from_embedding_folder(dir, set, image_root), dim))
            };
            let (q, dim) = read(queries)?;
            let g = gallery.map(read).transpose()?;
            if let Some((_, gdim)) = &g {
                if *gdim != dim {
                    bail!("queries have D = {dim} but the gallery has D = {gdim}");
                }
            }
            let mut s = settings.clone();
            s.ks = ks.unwrap_or_else(|| vec![1, 5, 10]);
            let started = Instant::now();
            tasks.push(evaluate_task(
                task,
                "label",
                &q,
                g.as_ref().map(|g| &g.0),
                dim,
                &s,
            )?);
            let input_bytes = array_bytes(queries) + gallery.map(array_bytes).unwrap_or(0);
            (
                queries.display().to_string(),
                started.elapsed().as_secs_f64(),
                Some(input_bytes),
            )
        }
    };
    let report = Report {
        format: REPORT_FORMAT.into(),
        version: REPORT_VERSION,
        model: model_id,
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        seconds,
        peak_rss_bytes: peak_rss_bytes(),
        input_bytes,
        settings,
        tasks,
    };
    report.write(out)?;
    let unreadable = unisight_eval::html::write_examples_page(&report, out)?;
    print!("{}", report.to_markdown());
    if unreadable > 0 {
        eprintln!("note: {unreadable} example images could not be read for thumbnails");
    }
    eprintln!(
        "wrote {0}/report.json, report.md, recall-*.png and examples.html",
        out.display()
    );
    Ok(())
}

/// Bytes of an embedding folder's embedding and code files.
fn array_bytes(dir: &Path) -> u64 {
    [EMBEDDINGS_FILE, CODES_FILE]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

/// Marker of a complete cached embedding of one set by one model.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct CacheKey {
    model: String,
    inputs: u32,
}

/// Embeds `images` into `dir` unless a complete embedding of the same images by the same model
/// is already there.
fn embed_cached(
    images: &[LabeledImage],
    embedder: &mut dyn Embedder,
    dir: &Path,
    model_id: &str,
) -> Result<EmbeddingSet> {
    let inputs: Vec<Input> = images
        .iter()
        .map(|im| Input {
            id: im.id.clone(),
            path: im.id.clone(),
            file: im.file.clone(),
            label: None,
            domain: im.domain.clone(),
        })
        .collect();
    let listing: String = inputs
        .iter()
        .map(|i| format!("{}\t{}\n", i.id, i.file.display()))
        .collect();
    let key = CacheKey {
        model: model_id.to_string(),
        inputs: crc32c::crc32c(listing.as_bytes()),
    };
    let key_path = dir.join("eval-cache.json");
    let cached = dir.join(META_FILE).exists()
        && std::fs::read(&key_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheKey>(&b).ok())
            .is_some_and(|k| k == key);
    if !cached {
        eprintln!("embedding {} images into {}", inputs.len(), dir.display());
        let options = EmbedOptions {
            batch_size: 32,
            chunk_size: 512,
            limits: DecodeLimits::default(),
            model_id: model_id.to_string(),
            progress: true,
            shard: None,
        };
        let summary = unisight_embed::run(&inputs, embedder, dir, &options)?;
        if summary.failed > 0 {
            eprintln!(
                "note: {} unreadable images left out (see {}/meta.json)",
                summary.failed,
                dir.display()
            );
        }
        atomic_write_bytes(
            &key_path,
            &serde_json::to_vec(&key).expect("key serialises"),
        )?;
    }
    Ok(EmbeddingSet::load(dir)?)
}

/// An embedding folder as a labelled set: items without a label are left out and counted.
/// The folder's arrays are compacted in place, so memory stays that of the embeddings.
fn from_embedding_folder(dir: &Path, set: EmbeddingSet, image_root: Option<&Path>) -> LabelledSet {
    let EmbeddingSet {
        dim,
        mut embeddings,
        mut codes,
        code_bytes,
        items: records,
    } = set;
    let mut items = Vec::with_capacity(records.len());
    let mut unlabelled = 0;
    for (row, item) in records.into_iter().enumerate() {
        let Some(label) = item.label else {
            unlabelled += 1;
            continue;
        };
        let kept = items.len();
        if kept != row {
            embeddings.copy_within(row * dim..(row + 1) * dim, kept * dim);
            codes.copy_within(row * code_bytes..(row + 1) * code_bytes, kept * code_bytes);
        }
        let path = match image_root {
            Some(root) => root.join(&item.path),
            None => PathBuf::from(&item.path),
        };
        items.push(ItemView {
            id: item.id,
            path: path.display().to_string(),
            label,
        });
    }
    embeddings.truncate(items.len() * dim);
    codes.truncate(items.len() * code_bytes);
    LabelledSet {
        name: dir.display().to_string(),
        items,
        embeddings,
        codes,
        groups: None,
        left_out: LeftOut {
            unlabelled,
            unreadable: 0,
        },
    }
}

/// Parses `NAME=REPORT[,REPORT...]` or `REPORT` (named after its model) and reads the reports.
fn read_entry(spec: &str) -> Result<CompareEntry> {
    let (name, paths) = match spec.split_once('=') {
        Some((name, paths)) if !name.is_empty() => (Some(name.to_string()), paths),
        _ => (None, spec),
    };
    let reports = paths
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| Report::read(Path::new(p)).with_context(|| format!("model `{spec}`")))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = reports.first() else {
        bail!("`{spec}`: no report paths");
    };
    Ok(CompareEntry {
        name: name.unwrap_or_else(|| first.model_name()),
        reports,
    })
}
