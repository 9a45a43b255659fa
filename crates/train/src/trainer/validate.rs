//! Validation and the final evaluation of a run: every task's query and gallery sets are
//! embedded by the network being trained (from the cache's plain view) and measured by the
//! eval crate ([`unisight_eval::report::evaluate_task`]), the same code `unisight eval` runs.
//! The sets proxies start from (`proxy_init`) are planned and cached here too.

use std::collections::HashMap;

use burn::module::Module;
use burn::tensor::Device;
use unisight_eval::evaluate::Settings;
use unisight_eval::labelled::LabelledSet;
use unisight_eval::report::evaluate_task;

use super::step::batch_input;
use super::TaskEval;
use crate::cache::{CacheEntry, TrainInputs};
use crate::config::{SetRef, TrainConfig};
use crate::network::Network;
use crate::plan::{load_eval_set, EvalSet, TrainingSet};
use crate::{Error, Result};

/// The evaluation sets of a run and where their images sit among the input entries.
pub(super) struct Evaluator {
    /// (task, queries, gallery (`None`: leave-one-out), is validation).
    sets: Vec<(usize, SetRef, Option<SetRef>, bool)>,
    /// Every set named, loaded once.
    loaded: Vec<EvalSet>,
    /// Per loaded set, the input entry of each image.
    entries: Vec<Vec<usize>>,
}

impl Evaluator {
    /// The cache entries of a run (training images with all their views, then evaluation
    /// images with the plain one) and the evaluator of its sets.
    ///
    /// # Errors
    /// An evaluation set cannot be listed.
    pub(super) fn plan(
        config: &TrainConfig,
        set: &TrainingSet,
    ) -> Result<(Vec<CacheEntry>, Evaluator)> {
        // evaluation sets: validation during training, final at the end
        let mut eval_sets: Vec<(usize, SetRef, Option<SetRef>, bool)> = Vec::new();
        for (t, task) in config.tasks.iter().enumerate() {
            if let Some(e) = &task.eval {
                let gallery =
                    (e.gallery != "self").then(|| SetRef::parse(&e.gallery).expect("checked"));
                eval_sets.push((
                    t,
                    SetRef::parse(&e.queries).expect("checked"),
                    gallery.clone(),
                    false,
                ));
                if let Some(v) = &e.validation {
                    eval_sets.push((t, SetRef::parse(v).expect("checked"), gallery, true));
                }
            }
        }
        // and the sets that proxies start from (`proxy_init`)
        let proxy_sets: Vec<SetRef> = config
            .tasks
            .iter()
            .filter_map(|t| t.proxy_init.as_deref())
            .map(|v| SetRef::parse(v).expect("checked"))
            .collect();
        let mut loaded: Vec<EvalSet> = Vec::new();
        let named = eval_sets
            .iter()
            .flat_map(|(_, q, g, _)| std::iter::once(q).chain(g.as_ref()))
            .chain(&proxy_sets);
        for r in named {
            if !loaded.iter().any(|s| &s.set == r) {
                loaded.push(load_eval_set(config, r)?);
            }
        }

        // cache entries: training images with all views, evaluation images with the plain one
        let views = config.train.views;
        let mut entries: Vec<CacheEntry> = set
            .images
            .iter()
            .map(|im| CacheEntry {
                key: im.key.clone(),
                file: im.file.clone(),
                views,
            })
            .collect();
        let mut index_of: std::collections::HashMap<String, usize> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.clone(), i))
            .collect();
        let mut eval_entries: Vec<Vec<usize>> = Vec::new();
        for s in &loaded {
            let mut rows = Vec::new();
            for im in &s.images {
                let key = format!("{}/{}", s.set.dataset, im.id);
                let i = *index_of.entry(key.clone()).or_insert_with(|| {
                    entries.push(CacheEntry {
                        key,
                        file: im.file.clone(),
                        views: 1,
                    });
                    entries.len() - 1
                });
                rows.push(i);
            }
            eval_entries.push(rows);
        }
        let evaluator = Evaluator {
            sets: eval_sets,
            loaded,
            entries: eval_entries,
        };
        Ok((entries, evaluator))
    }

    /// Recall@k and MAP@R, float and bits, of every validation (`validation`) or final set,
    /// measured with the current network.
    ///
    /// # Errors
    /// A set the eval crate cannot evaluate (a k larger than its gallery, no query left).
    pub(super) fn run(
        &self,
        net: &Network,
        cache: &TrainInputs,
        config: &TrainConfig,
        set: &TrainingSet,
        step: usize,
        validation: bool,
    ) -> Result<Vec<TaskEval>> {
        let dim = config.model.dim;
        let mut out = Vec::new();
        for (t, queries, gallery, is_val) in &self.sets {
            if *is_val != validation {
                continue;
            }
            let eval = config.tasks[*t].eval.as_ref();
            let label = eval
                .and_then(|e| e.label.clone())
                .unwrap_or_else(|| set.tasks[*t].label.clone());
            let group = eval.and_then(|e| e.group.as_deref());
            let ks = eval.map(|e| e.k.clone()).unwrap_or_else(|| vec![1]);
            let kmax = ks.iter().copied().max().unwrap_or(1);
            // MAP@R reads R results per query (up to the eval crate's cap), as `unisight eval`
            let settings = Settings {
                ks: ks.clone(),
                curve_depth: kmax,
                nmi_max_items: 0,
                examples: 0,
                ..Settings::default()
            };
            let q = self.labelled(net, cache, queries, &label, group, dim);
            let g = gallery
                .as_ref()
                .map(|g| self.labelled(net, cache, g, &label, group, dim));
            let task = &set.tasks[*t].name;
            let report =
                evaluate_task(task, &label, &q, g.as_ref(), dim, &settings).map_err(|e| {
                    Error::Config {
                        path: format!("tasks.{task}.eval").into(),
                        what: e.to_string(),
                    }
                })?;
            out.push(TaskEval {
                task: task.clone(),
                step,
                queries: q.name.clone(),
                gallery: g.as_ref().map_or_else(|| "self".into(), |g| g.name.clone()),
                k: ks,
                recall_float: report.metrics.float.recall,
                recall_bits: report.metrics.bits.recall,
                map_at_r_float: Some(report.metrics.float.map_at_r),
                map_at_r_bits: Some(report.metrics.bits.map_at_r),
            });
        }
        Ok(out)
    }

    /// A named set's images and, per image, its cache entry.
    pub(super) fn set(&self, which: &SetRef) -> (&EvalSet, &[usize]) {
        let i = self
            .loaded
            .iter()
            .position(|s| &s.set == which)
            .expect("every named set is loaded");
        (&self.loaded[i], &self.entries[i])
    }

    /// One set, embedded by `net`, as the eval crate reads it (unreadable images left out).
    fn labelled(
        &self,
        net: &Network,
        cache: &TrainInputs,
        which: &SetRef,
        label: &str,
        group: Option<&str>,
        dim: usize,
    ) -> LabelledSet {
        let (loaded, set_entries) = self.set(which);
        let rows: Vec<usize> = (0..loaded.images.len())
            .filter(|&r| cache.is_ok(set_entries[r]))
            .collect();
        let entries: Vec<usize> = rows.iter().map(|&r| set_entries[r]).collect();
        let (embeddings, codes) = embed_entries(net, cache, &entries, dim);
        let code_bytes = dim / 8;
        let position: HashMap<usize, usize> =
            rows.iter().enumerate().map(|(p, &r)| (r, p)).collect();
        LabelledSet::from_images(
            &format!("{}:{}", which.dataset, which.split),
            &loaded.images,
            label,
            group,
            |r| {
                position.get(&r).map(|&p| {
                    (
                        &embeddings[p * dim..(p + 1) * dim],
                        &codes[p * code_bytes..(p + 1) * code_bytes],
                    )
                })
            },
        )
    }
}

/// Embeddings (normalised) and codes of cache entries (plain view), by the current network.
pub(super) fn embed_entries(
    net: &Network,
    cache: &TrainInputs,
    entries: &[usize],
    dim: usize,
) -> (Vec<f32>, Vec<u8>) {
    let inference = net.valid();
    let device = Device::flex();
    let mut emb = Vec::with_capacity(entries.len() * dim);
    let mut codes = Vec::with_capacity(entries.len() * dim / 8);
    for chunk in entries.chunks(128) {
        let out = inference.forward(batch_input(cache, chunk.iter().map(|&e| (e, 0)), &device));
        let normalized = unisight_model::efficientnet::values_of(out.normalized).1;
        let projected = unisight_model::efficientnet::values_of(out.projected).1;
        emb.extend(normalized);
        for row in projected.chunks(dim) {
            codes.extend(unisight_core::code::pack_signs(row));
        }
    }
    (emb, codes)
}
