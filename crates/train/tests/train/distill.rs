//! Relational distillation from a teacher model (`[tasks.distill]`).

use std::path::PathBuf;

use burn::tensor::Device;
use unisight_model::UnifiedModel;
use unisight_train::trainer::train;

use super::{grocery, options, small_config};

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
