//! What a task file must satisfy beyond its types: the range of every number and the references
//! between keys. Each message names the key, its value and what is allowed, so a bad value stops
//! a run before minutes of trunk caching instead of panicking or training a useless model.

use std::fmt::Display;

use unisight_data::datasets::label_fields;

use super::{SetRef, TrainConfig};

/// Largest mini-batch: 16,384 cached trunk features are ~80 MiB; far beyond what the recipe
/// uses (64-256) and small enough that a typo cannot exhaust memory.
pub const MAX_BATCH_SIZE: usize = 16_384;
/// Most augmented views cached per image: each view is another row of every image's cache.
pub const MAX_VIEWS: usize = 64;
/// Most training steps (a run of this length already takes weeks here).
pub const MAX_STEPS: usize = 100_000_000;
/// Largest k of Recall@k in a task file.
pub const MAX_EVAL_K: usize = 10_000;

/// `Err` naming `key`, its value and `allowed` unless `ok`.
fn require(ok: bool, key: &str, value: impl Display, allowed: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("`{key}` = {value}: must be {allowed}"))
    }
}

/// `lo <= x <= hi`, false for NaN.
fn within(x: f64, lo: f64, hi: f64) -> bool {
    (lo..=hi).contains(&x)
}

/// `0 < x <= hi`, false for NaN.
fn positive_up_to(x: f64, hi: f64) -> bool {
    x > 0.0 && x <= hi
}

impl TrainConfig {
    /// Checks every number's range and the references between keys.
    ///
    /// # Errors
    /// A message naming the offending key, its value and the allowed range.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.tasks.is_empty() {
            return Err("`tasks`: at least one task is needed".into());
        }
        let m = &self.model;
        require(
            m.dim > 0 && m.dim.is_multiple_of(64) && m.dim <= unisight_core::FEATURE_DIM,
            "model.dim",
            m.dim,
            "a multiple of 64 up to 1280",
        )?;
        if m.front_precision == crate::FrontPrecision::Int8
            && matches!(
                m.train_from,
                crate::TrainFrom::Stem | crate::TrainFrom::Pooled
            )
        {
            return Err(format!(
                "`model.front_precision` = \"int8\" quantizes the cached front of blocks; \
                 model.train_from = \"{}\" has none to quantize (use \"blockN\" or \"head\")",
                String::from(m.train_from)
            ));
        }
        self.check_train()?;
        self.check_augment()?;
        self.check_datasets()?;
        self.check_tasks()
    }

    /// The datasets a run trains on: those the (kept) tasks read, as the trainer counts them
    /// (a file may define more).
    fn datasets_trained(&self) -> usize {
        let used: std::collections::BTreeSet<&String> =
            self.tasks.iter().flat_map(|t| &t.sources).collect();
        used.len()
    }

    fn check_train(&self) -> Result<(), String> {
        let t = &self.train;
        let between = |lo: usize, hi: usize| format!("between {lo} and {hi}");
        require(
            (2..=MAX_BATCH_SIZE).contains(&t.batch_size),
            "train.batch_size",
            t.batch_size,
            &between(2, MAX_BATCH_SIZE),
        )?;
        if let Some(n) = t.batch_per_dataset {
            let most = MAX_BATCH_SIZE / self.datasets_trained().max(1);
            require(
                (1..=most).contains(&n) && t.batch_for(self.datasets_trained()) >= 2,
                "train.batch_per_dataset",
                n,
                &format!("between 1 and {most}, at least 2 images a step in all"),
            )?;
        }
        if t.epochs.is_none() == t.steps.is_none() {
            return Err("`train`: give exactly one of `epochs` and `steps`".into());
        }
        if let Some(e) = t.epochs {
            require(
                positive_up_to(e, 1e6),
                "train.epochs",
                e,
                "> 0 and at most 1e6",
            )?;
        }
        if let Some(s) = t.steps {
            // 0: no step (a task file for evaluation, or a zero-shot model)
            require(s <= MAX_STEPS, "train.steps", s, &between(0, MAX_STEPS))?;
        }
        if let Some(w) = t.warmup_steps {
            require(
                w <= MAX_STEPS,
                "train.warmup_steps",
                w,
                &between(0, MAX_STEPS),
            )?;
        }
        require(
            positive_up_to(t.lr, 10.0),
            "train.lr",
            t.lr,
            "> 0 and at most 10",
        )?;
        require(
            within(t.trunk_lr_scale, 0.0, 10.0),
            "train.trunk_lr_scale",
            t.trunk_lr_scale,
            "between 0 and 10",
        )?;
        require(
            within(t.weight_decay, 0.0, 1.0),
            "train.weight_decay",
            t.weight_decay,
            "between 0 and 1",
        )?;
        require(
            within(t.momentum, 0.0, 1.0) && t.momentum < 1.0,
            "train.momentum",
            t.momentum,
            "at least 0 and below 1",
        )?;
        require(
            positive_up_to(t.temperature, 10.0),
            "train.temperature",
            t.temperature,
            "> 0 and at most 10",
        )?;
        require(
            within(t.binary_weight, 0.0, 100.0),
            "train.binary_weight",
            t.binary_weight,
            "between 0 and 100",
        )?;
        require(
            positive_up_to(t.binary_sharpness, 100.0),
            "train.binary_sharpness",
            t.binary_sharpness,
            "> 0 and at most 100",
        )?;
        require(
            (1..=MAX_VIEWS).contains(&t.views),
            "train.views",
            t.views,
            &between(1, MAX_VIEWS),
        )?;
        require(
            t.checkpoint_every >= 1,
            "train.checkpoint_every",
            t.checkpoint_every,
            "at least 1",
        )
    }

    fn check_augment(&self) -> Result<(), String> {
        let a = &self.augment;
        let [s0, s1] = a.crop_scale.map(f64::from);
        require(
            s0 > 0.0 && s0 <= s1 && s1 <= 1.0,
            "augment.crop_scale",
            format!("[{s0}, {s1}]"),
            "[low, high] with 0 < low <= high <= 1",
        )?;
        let [r0, r1] = a.crop_ratio.map(f64::from);
        require(
            r0 > 0.0 && r0 <= r1 && r1 <= 100.0,
            "augment.crop_ratio",
            format!("[{r0}, {r1}]"),
            "[low, high] with 0 < low <= high <= 100",
        )?;
        require(
            within(f64::from(a.jitter), 0.0, 1.0),
            "augment.jitter",
            a.jitter,
            "between 0 and 1",
        )
    }

    fn check_datasets(&self) -> Result<(), String> {
        for (name, d) in &self.datasets {
            let key = |field: &str| format!("datasets.{name}.{field}");
            if let Some(s) = d.share {
                require(
                    positive_up_to(s, 1e6),
                    &key("share"),
                    s,
                    "> 0 and at most 1e6",
                )?;
            }
            if let Some(n) = d.images_per_class {
                let batch = self.train.batch_for(self.datasets_trained());
                require(
                    (1..=batch).contains(&n),
                    &key("images_per_class"),
                    n,
                    &format!("between 1 and the batch ({batch})"),
                )?;
            }
            for (domain, w) in &d.domain_weights {
                require(
                    within(*w, 0.0, 1e6),
                    &key(&format!("domain_weights.{domain}")),
                    w,
                    "between 0 and 1e6",
                )?;
            }
            let r = &d.engagement_rule;
            require(
                within(r.save_weight, 0.0, 1e6),
                &key("engagement_rule.save_weight"),
                r.save_weight,
                "between 0 and 1e6",
            )?;
            require(
                within(r.min_score, 0.0, 1e12),
                &key("engagement_rule.min_score"),
                r.min_score,
                "between 0 and 1e12",
            )?;
            require(
                r.max_class_size >= 1,
                &key("engagement_rule.max_class_size"),
                r.max_class_size,
                "at least 1",
            )?;
            if let Some(l) = &d.balance_label {
                if !label_fields(&d.kind).contains(&l.as_str()) {
                    return Err(format!(
                        "`datasets.{name}.balance_label` = `{l}` is not a label of this dataset"
                    ));
                }
            }
            if d.train_splits.is_empty() {
                return Err(format!("`datasets.{name}.train_splits` is empty"));
            }
            if let Some(f) = d.validation_fraction {
                require(
                    f > 0.0 && f <= 0.5,
                    &key("validation_fraction"),
                    f,
                    "> 0 and at most 0.5",
                )?;
            }
        }
        Ok(())
    }

    fn check_tasks(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (i, task) in self.tasks.iter().enumerate() {
            let key = format!("tasks[{i}] ({})", task.name);
            let field = |f: &str| format!("tasks[{i}].{f}");
            if !names.insert(&task.name) {
                return Err(format!("{key}: `name` is used twice"));
            }
            if task.sources.is_empty() {
                return Err(format!("{key}: `sources` is empty"));
            }
            for s in &task.sources {
                let d = self.datasets.get(s).ok_or_else(|| {
                    format!("{key}: `sources` names `{s}`, which is not in `datasets`")
                })?;
                let fields = label_fields(&d.kind);
                if !fields.contains(&task.label.as_str()) {
                    return Err(format!(
                        "{key}: `label` = `{}` is not a label of dataset `{s}` ({})",
                        task.label,
                        fields.join(", ")
                    ));
                }
            }
            if let Some(s) = task.share {
                require(
                    positive_up_to(s, 1e6),
                    &field("share"),
                    s,
                    "> 0 and at most 1e6",
                )?;
            }
            require(
                within(task.weight, 0.0, 1e6),
                &field("weight"),
                task.weight,
                "between 0 and 1e6",
            )?;
            if let Some(t) = task.temperature {
                require(
                    positive_up_to(t, 10.0),
                    &field("temperature"),
                    t,
                    "> 0 and at most 10",
                )?;
            }
            require(
                task.proxy_budget >= 2,
                &field("proxy_budget"),
                task.proxy_budget,
                "at least 2",
            )?;
            if let Some(v) = &task.proxy_init {
                let r = SetRef::parse(v).ok_or_else(|| {
                    format!("{key}: `proxy_init` = `{v}`: expected `dataset:split`")
                })?;
                if !task.sources.contains(&r.dataset) {
                    return Err(format!(
                        "{key}: `proxy_init` = `{v}` names dataset `{}`, which is not one of \
                         the task's `sources` (its labels must be the task's classes)",
                        r.dataset
                    ));
                }
            }
            if let Some(d) = &task.distill {
                require(
                    within(d.weight, 0.0, 1e6),
                    &field("distill.weight"),
                    d.weight,
                    "between 0 and 1e6",
                )?;
                if let Some(t) = d.temperature {
                    require(
                        positive_up_to(t, 10.0),
                        &field("distill.temperature"),
                        t,
                        "> 0 and at most 10",
                    )?;
                }
            }
            if let Some(e) = &task.eval {
                for (name, v) in [
                    ("queries", Some(&e.queries)),
                    ("gallery", Some(&e.gallery)),
                    ("validation", e.validation.as_ref()),
                ] {
                    let Some(v) = v else { continue };
                    if name == "gallery" && v == "self" {
                        continue;
                    }
                    let r = SetRef::parse(v).ok_or_else(|| {
                        format!("{key}: `eval.{name}` = `{v}`: expected `dataset:split`")
                    })?;
                    let Some(d) = self.datasets.get(&r.dataset) else {
                        return Err(format!(
                            "{key}: `eval.{name}` names dataset `{}`, which is not in `datasets`",
                            r.dataset
                        ));
                    };
                    if r.split == crate::CARVED_SPLIT && d.validation_fraction.is_none() {
                        return Err(format!(
                            "{key}: `eval.{name}` = `{v}`, but `datasets.{}.validation_fraction` \
                             is not set, so nothing is carved",
                            r.dataset
                        ));
                    }
                }
                require(
                    !e.k.is_empty() && e.k.iter().all(|k| (1..=MAX_EVAL_K).contains(k)),
                    &field("eval.k"),
                    format!("{:?}", e.k),
                    &format!("a non-empty list of integers between 1 and {MAX_EVAL_K}"),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::TrainConfig;

    const TASKS: &str = r#"
[train]
steps = 10
[datasets.grocery]
kind = "grocery-store"
root = "grocery"
[[tasks]]
name = "fine"
sources = ["grocery"]
label = "fine"
[tasks.eval]
queries = "grocery:test"
gallery = "grocery:iconic"
validation = "grocery:val"
"#;

    fn load_with(overrides: &[&str]) -> Result<TrainConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.toml");
        std::fs::write(&path, TASKS).unwrap();
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        TrainConfig::load_with_overrides(&path, None, &overrides).map_err(|e| e.to_string())
    }

    #[test]
    fn every_shipped_task_file_is_in_range() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() || path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("[[tasks]]") {
                TrainConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
                checked += 1;
            }
        }
        assert!(checked >= 5, "{checked} task files");
    }

    #[test]
    fn every_out_of_range_number_is_refused_by_name() {
        load_with(&[]).unwrap();
        // each of these once panicked, aborted on an allocation or trained a NaN model
        for (set, key) in [
            ("train.checkpoint_every=0", "train.checkpoint_every"),
            ("augment.crop_scale=[1.0, 0.25]", "augment.crop_scale"),
            ("augment.crop_ratio=[0.0, 1.0]", "augment.crop_ratio"),
            ("train.views=100000000", "train.views"),
            ("train.batch_size=1000000000", "train.batch_size"),
            ("train.batch_per_dataset=0", "train.batch_per_dataset"),
            (
                "train.batch_per_dataset=100000000",
                "train.batch_per_dataset",
            ),
            ("train.lr=nan", "train.lr"),
            ("train.lr=-1", "train.lr"),
            ("train.lr=inf", "train.lr"),
            ("train.temperature=0", "train.temperature"),
            ("train.momentum=1", "train.momentum"),
            ("train.weight_decay=nan", "train.weight_decay"),
            ("train.binary_weight=-0.5", "train.binary_weight"),
            ("train.steps=100000001", "train.steps"),
            ("augment.jitter=1.5", "augment.jitter"),
            ("datasets.grocery.share=nan", "datasets.grocery.share"),
            (
                "datasets.grocery.images_per_class=65",
                "datasets.grocery.images_per_class",
            ),
            (
                "datasets.grocery.domain_weights.catalog=-1",
                "datasets.grocery.domain_weights.catalog",
            ),
            ("tasks=[]", "tasks"),
            ("tasks.fine.temperature=0", "tasks[0].temperature"),
            ("tasks.fine.temperature=11", "tasks[0].temperature"),
            (
                "tasks.fine.distill={teacher = \"t.safetensors\", weight = -1.0}",
                "tasks[0].distill.weight",
            ),
            (
                "tasks.fine.distill={teacher = \"t.safetensors\", temperature = 0.0}",
                "tasks[0].distill.temperature",
            ),
        ] {
            let e = load_with(&[set]).expect_err(set);
            assert!(e.contains(&format!("`{key}`")), "{set}: {e}");
        }
        let e = load_with(&["train.lr=nan"]).unwrap_err();
        assert!(
            e.contains("`train.lr` = NaN: must be > 0 and at most 10"),
            "{e}"
        );
    }

    #[test]
    fn proxy_init_names_a_set_of_the_tasks_own_sources() {
        let with = |value: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tasks.toml");
            let text = TASKS.replace(
                "label = \"fine\"\n",
                &format!("label = \"fine\"\nproxy_init = \"{value}\"\n"),
            );
            std::fs::write(&path, text).unwrap();
            TrainConfig::load(&path).map_err(|e| e.to_string())
        };
        let ok = with("grocery:iconic").unwrap();
        assert_eq!(ok.tasks[0].proxy_init.as_deref(), Some("grocery:iconic"));
        let e = with("iconic").unwrap_err();
        assert!(
            e.contains("`proxy_init` = `iconic`: expected `dataset:split`"),
            "{e}"
        );
        let e = with("clothing:train").unwrap_err();
        assert!(e.contains("not one of the task's `sources`"), "{e}");
    }

    #[test]
    fn a_teachers_path_is_resolved_from_the_task_files_folder() {
        let taught = load_with(&["tasks.fine.distill={teacher = \"t.safetensors\"}"]).unwrap();
        let distill = taught.tasks[0].distill.as_ref().unwrap();
        assert!(distill.teacher.is_absolute(), "{:?}", distill.teacher);
        assert!(distill.teacher.ends_with("t.safetensors"));
        assert_eq!((distill.weight, distill.temperature), (1.0, None));
    }
}
