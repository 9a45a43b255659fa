//! The model kept: the configured validation score chooses the step.

use unisight_train::config::ValidationMetric;
use unisight_train::trainer::train;

use super::{grocery, options, small_config};

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
