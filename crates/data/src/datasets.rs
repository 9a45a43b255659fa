//! Labelled datasets in their own on-disk layouts, as training and evaluation read them.
//!
//! - [`DatasetKind::GroceryStore`]: the Grocery Store dataset (Klasson et al., WACV 2019):
//!   `train.txt` / `val.txt` / `test.txt` with `path, fine_id, coarse_id` per line, `classes.csv`
//!   with names and the iconic (catalog) image of every fine class. Splits `train`, `val`,
//!   `test`, and `iconic` (one catalog image per fine class). Labels `fine` and `coarse` (class
//!   names); domain `store-photo` or `catalog`.
//! - [`DatasetKind::ImageFolder`]: `split/class/*.jpg` (e.g. the clothing dataset); label
//!   `class`.
//! - [`DatasetKind::Manifest`]: a CSV (with header) or JSON Lines manifest per split, rows with
//!   `path`, optional `id`, `label` and `domain`; label `label`.
//!
//! Every path is resolved inside the dataset root (no absolute paths, no `..` out of it); a
//! malformed line is an error naming the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::{list_inputs, resolve_inside, IMAGE_EXTENSIONS};
use crate::{Error, Result};

/// On-disk layout of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// The Grocery Store layout.
    GroceryStore,
    /// `split/class/image`.
    ImageFolder,
    /// `split.csv` or `split.jsonl` manifests in the root.
    Manifest,
    /// `split.jsonl` engagement logs in the root (read by the `unisight-engagement` crate); label
    /// `engagement` (the class of the default rule).
    Engagement,
}

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledImage {
    /// Unique id within the dataset (the path relative to the root).
    pub id: String,
    /// Resolved file.
    pub file: PathBuf,
    /// Label values by field (`fine`, `coarse`, `class`, `label`).
    pub labels: BTreeMap<String, String>,
    /// Domain, when the layout says (`store-photo`, `catalog`).
    pub domain: Option<String>,
}

/// The label fields a layout provides.
pub fn label_fields(kind: &DatasetKind) -> &'static [&'static str] {
    match kind {
        DatasetKind::GroceryStore => &["fine", "coarse"],
        DatasetKind::ImageFolder => &["class"],
        DatasetKind::Manifest => &["label"],
        DatasetKind::Engagement => &["engagement"],
    }
}

/// Lists one split of a dataset.
///
/// # Errors
/// [`Error::Io`] for a missing split file or folder; [`Error::Manifest`] naming file and line
/// for malformed rows, unknown class ids, or paths escaping the root.
pub fn list_split(kind: &DatasetKind, root: &Path, split: &str) -> Result<Vec<LabeledImage>> {
    let images = match kind {
        DatasetKind::GroceryStore => grocery_split(root, split)?,
        DatasetKind::ImageFolder => image_folder_split(root, split)?,
        DatasetKind::Manifest => manifest_split(root, split)?,
        DatasetKind::Engagement => {
            return Err(Error::Manifest {
                path: root.join(format!("{split}.jsonl")),
                line: 0,
                what: "engagement datasets are read by unisight-engagement (name the dataset \
                       in a task file)"
                    .into(),
            })
        }
    };
    Ok(images)
}

struct GroceryClass {
    fine: String,
    coarse: String,
    iconic: String,
}

fn grocery_classes(root: &Path) -> Result<BTreeMap<usize, GroceryClass>> {
    let path = root.join("classes.csv");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut classes = BTreeMap::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| Error::Manifest {
            path: path.clone(),
            line: n + 1,
            what,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 5 {
            return Err(bad(format!(
                "expected 6 comma-separated fields, found {}",
                fields.len()
            )));
        }
        let id: usize = fields[1]
            .parse()
            .map_err(|_| bad(format!("class id `{}` is not a number", fields[1])))?;
        if classes
            .insert(
                id,
                GroceryClass {
                    fine: fields[0].to_string(),
                    coarse: fields[2].to_string(),
                    iconic: fields[4].trim_start_matches('/').to_string(),
                },
            )
            .is_some()
        {
            return Err(bad(format!("class id {id} appears twice")));
        }
    }
    Ok(classes)
}

fn grocery_split(root: &Path, split: &str) -> Result<Vec<LabeledImage>> {
    let classes = grocery_classes(root)?;
    let labels = |c: &GroceryClass| {
        BTreeMap::from([
            ("fine".to_string(), c.fine.clone()),
            ("coarse".to_string(), c.coarse.clone()),
        ])
    };
    let csv = root.join("classes.csv");
    if split == "iconic" {
        return classes
            .iter()
            .enumerate()
            .map(|(n, (_, c))| {
                let file = resolve_inside(root, &c.iconic).ok_or_else(|| Error::Manifest {
                    path: csv.clone(),
                    line: n + 2,
                    what: format!("iconic image path `{}` leaves the dataset root", c.iconic),
                })?;
                Ok(LabeledImage {
                    id: c.iconic.clone(),
                    file,
                    labels: labels(c),
                    domain: Some("catalog".into()),
                })
            })
            .collect();
    }
    let path = root.join(format!("{split}.txt"));
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |what: String| Error::Manifest {
            path: path.clone(),
            line: n + 1,
            what,
        };
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [rel, fine, coarse] = fields[..] else {
            return Err(bad(format!(
                "expected `path, fine_id, coarse_id`, found {} fields",
                fields.len()
            )));
        };
        let fine: usize = fine
            .parse()
            .map_err(|_| bad(format!("fine id `{fine}` is not a number")))?;
        let class = classes
            .get(&fine)
            .ok_or_else(|| bad(format!("fine id {fine} is not in classes.csv")))?;
        if coarse.parse::<usize>().is_err() {
            return Err(bad(format!("coarse id `{coarse}` is not a number")));
        }
        let file = resolve_inside(root, rel)
            .ok_or_else(|| bad(format!("path `{rel}` leaves the dataset root")))?;
        out.push(LabeledImage {
            id: rel.to_string(),
            file,
            labels: labels(class),
            domain: Some("store-photo".into()),
        });
    }
    Ok(out)
}

fn image_folder_split(root: &Path, split: &str) -> Result<Vec<LabeledImage>> {
    let dir = resolve_inside(root, split).ok_or_else(|| Error::Io {
        path: root.join(split),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "split leaves the dataset root",
        ),
    })?;
    let read_dir = |d: &Path| {
        std::fs::read_dir(d).map_err(|source| Error::Io {
            path: d.into(),
            source,
        })
    };
    let mut classes: Vec<PathBuf> = read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut out = Vec::new();
    for class_dir in classes {
        let class = class_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut files: Vec<PathBuf> = read_dir(&class_dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            out.push(LabeledImage {
                id: format!("{split}/{class}/{name}"),
                file,
                labels: BTreeMap::from([("class".to_string(), class.clone())]),
                domain: None,
            });
        }
    }
    Ok(out)
}

fn manifest_split(root: &Path, split: &str) -> Result<Vec<LabeledImage>> {
    let manifest = ["csv", "jsonl"]
        .iter()
        .map(|ext| root.join(format!("{split}.{ext}")))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Io {
            path: root.join(format!("{split}.csv")),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no {split}.csv or {split}.jsonl manifest",
            ),
        })?;
    Ok(list_inputs(&manifest, Some(root))?
        .into_iter()
        .map(|input| LabeledImage {
            id: input.id,
            file: input.file,
            labels: input
                .label
                .map(|l| BTreeMap::from([("label".to_string(), l)]))
                .unwrap_or_default(),
            domain: input.domain,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grocery_fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("classes.csv"),
            "Class Name (str),Class ID (int),Coarse Class Name (str),Coarse Class ID (int),Iconic Image Path (str),Product Description Path (str)\n\
             Oat-Milk,0,Oatghurt,0,/iconic/Oat-Milk_Iconic.jpg,/iconic/d.txt\n\
             Arla-Milk,1,Milk,1,/iconic/Arla-Milk_Iconic.jpg,/iconic/e.txt\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("train.txt"),
            "train/a.jpg, 0, 0\ntrain/b.jpg, 1, 1\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn grocery_layout_gives_fine_and_coarse_labels_and_iconic_images() {
        let dir = grocery_fixture();
        let train = list_split(&DatasetKind::GroceryStore, dir.path(), "train").unwrap();
        assert_eq!(train.len(), 2);
        assert_eq!(train[1].labels["fine"], "Arla-Milk");
        assert_eq!(train[1].labels["coarse"], "Milk");
        assert_eq!(train[0].domain.as_deref(), Some("store-photo"));
        let iconic = list_split(&DatasetKind::GroceryStore, dir.path(), "iconic").unwrap();
        assert_eq!(iconic.len(), 2);
        assert!(iconic[0].file.ends_with("iconic/Oat-Milk_Iconic.jpg"));
        assert_eq!(iconic[0].domain.as_deref(), Some("catalog"));
    }

    #[test]
    fn grocery_errors_name_file_and_line() {
        let dir = grocery_fixture();
        std::fs::write(
            dir.path().join("val.txt"),
            "val/a.jpg, 0, 0\nval/b.jpg, 7, 1\n",
        )
        .unwrap();
        let err = list_split(&DatasetKind::GroceryStore, dir.path(), "val")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("val.txt: line 2") && err.contains("fine id 7"),
            "{err}"
        );
        std::fs::write(dir.path().join("test.txt"), "../../etc/passwd, 0, 0\n").unwrap();
        let err = list_split(&DatasetKind::GroceryStore, dir.path(), "test")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("leaves the dataset root"),
            "{err}"
        );
        std::fs::write(dir.path().join("bad.txt"), "a.jpg, 0\n").unwrap();
        let err = list_split(&DatasetKind::GroceryStore, dir.path(), "bad")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("fields"), "{err}");
    }

    #[test]
    fn image_folder_labels_by_folder() {
        let dir = tempfile::tempdir().unwrap();
        for (class, name) in [
            ("hat", "1.jpg"),
            ("hat", "2.JPG"),
            ("skirt", "3.jpg"),
            ("skirt", "notes.txt"),
        ] {
            std::fs::create_dir_all(dir.path().join("train").join(class)).unwrap();
            std::fs::write(dir.path().join("train").join(class).join(name), b"x").unwrap();
        }
        let images = list_split(&DatasetKind::ImageFolder, dir.path(), "train").unwrap();
        let labels: Vec<&str> = images.iter().map(|i| i.labels["class"].as_str()).collect();
        assert_eq!(labels, ["hat", "hat", "skirt"]);
        assert_eq!(images[2].id, "train/skirt/3.jpg");
        assert!(list_split(&DatasetKind::ImageFolder, dir.path(), "../x").is_err());
    }

    #[test]
    fn manifest_split_reads_labels_and_domains() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.jsonl"),
            "{\"path\": \"a.jpg\", \"label\": \"x\", \"domain\": \"catalog\"}\n{\"path\": \"b.jpg\"}\n",
        )
        .unwrap();
        let images = list_split(&DatasetKind::Manifest, dir.path(), "train").unwrap();
        assert_eq!(images[0].labels["label"], "x");
        assert_eq!(images[0].domain.as_deref(), Some("catalog"));
        assert!(images[1].labels.is_empty());
    }
}
