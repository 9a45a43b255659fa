//! The task files the repository ships.

use std::path::PathBuf;

use unisight_train::config::TrainConfig;

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
    // every shipped sweep grid gives task files that load, point by point (the task subsets
    // over the four-task file, the recipe levers over the recipe)
    let grids = dir.join("sweeps");
    let mut grids_read = 0;
    for entry in std::fs::read_dir(&grids).unwrap() {
        let path = entry.unwrap().path();
        let grid = unisight_train::sweep::Grid::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let subsets = path.ends_with("task-subsets.toml");
        let base = dir.join(if subsets {
            "unified-four.toml"
        } else {
            "unified-binary.toml"
        });
        let points = grid.points();
        if subsets {
            assert_eq!(points.len(), 15, "every non-empty subset of four tasks");
        }
        for point in &points {
            let config = TrainConfig::load_with_overrides(&base, None, point)
                .unwrap_or_else(|e| panic!("{}: {point:?}: {e}", path.display()));
            assert!(!config.tasks.is_empty() && config.tasks.len() <= 4);
        }
        if path.ends_with("map-temperature.toml") {
            let last =
                TrainConfig::load_with_overrides(&base, None, points.last().unwrap()).unwrap();
            let temperatures: Vec<Option<f64>> = last.tasks.iter().map(|t| t.temperature).collect();
            assert_eq!(temperatures, [None, Some(0.2), Some(0.2)]);
        }
        grids_read += 1;
    }
    assert!(grids_read >= 3, "{grids_read} sweep grids");
}
