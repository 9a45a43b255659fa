//! `unisight train --set KEY=VALUE`: overrides applied to a task file's TOML before it is read
//! as a [`crate::TrainConfig`], so a script or a sweep changes a key without editing the
//! file.

/// Sets `KEY=VALUE` (a dotted table path) in `table`, creating missing tables. A part that
/// names an array of tables is followed by the `name` of one of them: `tasks.grocery-fine.weight`
/// is the `weight` of the task named `grocery-fine`.
pub(crate) fn apply(table: &mut toml::Table, assignment: &str) -> std::result::Result<(), String> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let (last, tables) = parts.split_last().expect("at least one part");
    let mut at = table;
    let mut tables = tables.iter();
    while let Some(&part) = tables.next() {
        let entry = at
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let Some(&name) = tables.next() else {
                    return Err(format!(
                        "`{part}` is a list: name one of its entries (`{part}.NAME.{last}`)"
                    ));
                };
                items
                    .iter_mut()
                    .filter_map(toml::Value::as_table_mut)
                    .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(name))
                    .ok_or_else(|| format!("`{part}` has no entry named `{name}`"))?
            }
            _ => return Err(format!("`{part}` is not a table")),
        };
    }
    at.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::TrainConfig;

    const TASKS: &str = r#"
seed = 3
[train]
steps = 10
[datasets.grocery]
kind = "grocery-store"
root = "data/grocery"
[datasets.clothing]
kind = "image-folder"
root = "/abs/clothing"
[[tasks]]
name = "fine"
sources = ["grocery"]
label = "fine"
"#;

    #[test]
    fn overrides_set_values_and_paths_and_refuse_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tasks.toml");
        std::fs::write(&path, TASKS).unwrap();
        let set = |o: &[&str]| {
            let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
            TrainConfig::load_with_overrides(&path, None, &o)
        };
        let c = set(&[
            "train.steps=300",
            "seed=9",
            "datasets.clothing.root=/else/where",
        ])
        .unwrap();
        assert_eq!((c.train.steps, c.seed), (Some(300), 9));
        assert_eq!(c.datasets["clothing"].root, PathBuf::from("/else/where"));
        // a relative path resolves in the task file's folder, as the file's own do
        let c = set(&["datasets.grocery.root=other"]).unwrap();
        assert_eq!(c.datasets["grocery"].root, dir.path().join("other"));
        // an entry of a list of tables, by its name
        let c = set(&["tasks.fine.weight=2.5"]).unwrap();
        assert_eq!(c.tasks[0].weight, 2.5);
        for (bad, says) in [
            ("tasks.coarse.weight=2", "no entry named `coarse`"),
            ("tasks.weight=2", "`tasks` is a list"),
        ] {
            let err = set(&[bad]).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        for bad in [
            "train.steps",
            "seed.x=1",
            "train.nosuchkey=1",
            "train.steps=\"many\"",
        ] {
            let err = set(&[bad]).unwrap_err().to_string();
            assert!(err.contains("tasks.toml"), "{bad}: {err}");
        }
    }
}
