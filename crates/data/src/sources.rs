//! What to embed: a folder, or a manifest (CSV with a header, or JSON Lines).
//!
//! Manifest rows have `path` and optionally `id` and `label`; a path is resolved against the
//! manifest's folder (or an explicit root) and must stay inside it: absolute paths, `..` that
//! climb out and symbolic links that lead out are refused, line by line.

use std::io::{BufRead, BufReader};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// File extensions read from folders.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp"];

/// One image to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Unique id (manifest `id`, else the path relative to the root).
    pub id: String,
    /// Path as given (relative to the root).
    pub path: String,
    /// Resolved file path.
    pub file: PathBuf,
    /// Label, if the manifest gave one.
    pub label: Option<String>,
    /// Domain (e.g. `store-photo`, `catalog`), if the manifest gave one.
    pub domain: Option<String>,
}

/// Lists the inputs named by `input`: a folder, a `.csv` or a `.jsonl` manifest. `root`
/// overrides the folder manifest paths are resolved in.
///
/// # Errors
/// I/O errors; [`Error::Manifest`] naming the line of a malformed row, a path that escapes
/// the root, or a duplicated id.
pub fn list_inputs(input: &Path, root: Option<&Path>) -> Result<Vec<Input>> {
    let inputs = if input.is_dir() {
        list_folder(input)?
    } else {
        let root = root
            .map(Path::to_path_buf)
            .unwrap_or_else(|| input.parent().unwrap_or(Path::new(".")).to_path_buf());
        match input.extension().and_then(|e| e.to_str()) {
            Some("csv") => read_csv(input, &root)?,
            Some("jsonl") | Some("json") => read_jsonl(input, &root)?,
            _ => {
                return Err(Error::Io {
                    path: input.into(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "not a folder, .csv or .jsonl manifest",
                    ),
                })
            }
        }
    };
    Ok(inputs)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Image files under `root`, sorted; links to folders are not followed, links to files only
/// when they stay inside `root`.
fn list_folder(root: &Path) -> Result<Vec<Input>> {
    let mut files = Vec::new();
    let mut links = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::Io {
                path: dir.clone(),
                source: e,
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::Io {
                path: path.clone(),
                source: e,
            })?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() && !path.is_dir() && has_image_extension(&path) {
                links.insert(path.clone());
                files.push(path);
            } else if !kind.is_symlink() && has_image_extension(&path) {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut inputs = Vec::with_capacity(files.len());
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        if links.contains(&file) && resolve_inside(root, &rel).is_none() {
            return Err(Error::Io {
                path: file,
                source: std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "a link to a file outside the input folder {}; remove it or embed its target's folder",
                        root.display()
                    ),
                ),
            });
        }
        inputs.push(Input {
            id: rel.clone(),
            path: rel,
            file,
            label: None,
            domain: None,
        });
    }
    Ok(inputs)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    path: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    label: Option<serde_json::Value>,
    #[serde(default)]
    domain: Option<String>,
}

fn to_input(row: Row, root: &Path, manifest: &Path, line: usize) -> Result<Input> {
    let file = resolve_inside(root, &row.path).ok_or_else(|| Error::Manifest {
        path: manifest.into(),
        line,
        what: format!(
            "path {:?} escapes the dataset root {}",
            row.path,
            root.display()
        ),
    })?;
    let label = row.label.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    Ok(Input {
        id: row.id.unwrap_or_else(|| row.path.clone()),
        path: row.path,
        file,
        label,
        domain: row.domain,
    })
}

fn read_jsonl(manifest: &Path, root: &Path) -> Result<Vec<Input>> {
    let file = std::fs::File::open(manifest).map_err(|e| Error::Io {
        path: manifest.into(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::Manifest {
            path: manifest.into(),
            line: i + 1,
            what: if e.kind() == std::io::ErrorKind::InvalidData {
                "not valid UTF-8".into()
            } else {
                e.to_string()
            },
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).map_err(|e| Error::Manifest {
            path: manifest.into(),
            line: i + 1,
            what: e.to_string(),
        })?;
        out.push((to_input(row, root, manifest, i + 1)?, i + 1));
    }
    check_unique(out, manifest)
}

fn read_csv(manifest: &Path, root: &Path) -> Result<Vec<Input>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(manifest)
        .map_err(|e| Error::Manifest {
            path: manifest.into(),
            line: 1,
            what: e.to_string(),
        })?;
    let headers = reader
        .headers()
        .map_err(|e| Error::Manifest {
            path: manifest.into(),
            line: 1,
            what: e.to_string(),
        })?
        .clone();
    if !headers.iter().any(|h| h == "path") {
        return Err(Error::Manifest {
            path: manifest.into(),
            line: 1,
            what: format!(
                "header has no `path` column (found {:?})",
                headers.iter().collect::<Vec<_>>()
            ),
        });
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::Manifest {
            path: manifest.into(),
            line: e.position().map_or(0, |p| p.line() as usize),
            what: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let get = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let path = get("path").ok_or_else(|| Error::Manifest {
            path: manifest.into(),
            line,
            what: "empty path".into(),
        })?;
        let row = Row {
            path,
            id: get("id"),
            label: get("label").map(serde_json::Value::String),
            domain: get("domain"),
        };
        out.push((to_input(row, root, manifest, line)?, line));
    }
    check_unique(out, manifest)
}

/// The inputs, each with its line; an id used twice is an error naming both lines.
fn check_unique(inputs: Vec<(Input, usize)>, manifest: &Path) -> Result<Vec<Input>> {
    let mut seen = std::collections::HashMap::new();
    for (input, line) in &inputs {
        if let Some(first) = seen.insert(input.id.as_str(), *line) {
            return Err(Error::Manifest {
                path: manifest.into(),
                line: *line,
                what: format!("id {:?} repeats line {first}", input.id),
            });
        }
    }
    Ok(inputs.into_iter().map(|(input, _)| input).collect())
}

/// Joins `relative` to `root`, refusing absolute paths, `..` that leave the root, and paths
/// that leave it through a symbolic link (a link inside the root to a file or folder outside,
/// or a dangling link). Every path from a manifest, a request, a log or a config goes through
/// here before it is read.
///
/// The returned path is the lexical join (as the user wrote it); its real location, with every
/// link in its existing part resolved, was inside the root's real location when checked.
pub fn resolve_inside(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    let joined = parts.iter().fold(root.to_path_buf(), |acc, p| acc.join(p));
    let real_root = real_path(root)?;
    real_path(&joined)?
        .starts_with(&real_root)
        .then_some(joined)
}

/// `path` with every symbolic link in its existing part resolved: the deepest existing ancestor
/// canonicalized, the missing rest appended (it does not exist, so it holds no link). `None`
/// for a dangling link, whose target could appear anywhere later.
fn real_path(path: &Path) -> Option<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if existing.as_os_str().is_empty() {
            existing = PathBuf::from(".");
        }
        match existing.canonicalize() {
            Ok(real) => return Some(rest.iter().rev().fold(real, |acc, p| acc.join(p))),
            Err(_) => {
                if existing.symlink_metadata().is_ok() {
                    // it exists but does not resolve: a dangling or looping link
                    return None;
                }
                rest.push(existing.file_name()?.to_owned());
                existing = existing.parent()?.to_path_buf();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape() {
        let root = Path::new("/data");
        assert_eq!(
            resolve_inside(root, "a/b.jpg"),
            Some(PathBuf::from("/data/a/b.jpg"))
        );
        assert_eq!(
            resolve_inside(root, "a/../b.jpg"),
            Some(PathBuf::from("/data/b.jpg"))
        );
        assert_eq!(resolve_inside(root, "../etc/passwd"), None);
        assert_eq!(resolve_inside(root, "a/../../x"), None);
        assert_eq!(resolve_inside(root, "/etc/passwd"), None);
        assert_eq!(resolve_inside(root, ""), None);
    }

    #[test]
    fn links_cannot_lead_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.jpg"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/ok.jpg"), b"ok").unwrap();
        let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
        link(&outside.path().join("secret.jpg"), "evil.jpg").unwrap();
        link(outside.path(), "evil-dir").unwrap();
        link(&outside.path().join("gone.jpg"), "dangling.jpg").unwrap();
        link(&root.join("sub/ok.jpg"), "inside.jpg").unwrap();
        link(Path::new("sub"), "relative-dir").unwrap();
        assert_eq!(resolve_inside(&root, "evil.jpg"), None);
        assert_eq!(resolve_inside(&root, "evil-dir/secret.jpg"), None);
        assert_eq!(resolve_inside(&root, "dangling.jpg"), None);
        assert_eq!(
            resolve_inside(&root, "inside.jpg"),
            Some(root.join("inside.jpg"))
        );
        assert_eq!(
            resolve_inside(&root, "relative-dir/ok.jpg"),
            Some(root.join("relative-dir/ok.jpg"))
        );
        // a file that does not exist yet resolves (reading it will fail on its own)
        assert_eq!(
            resolve_inside(&root, "sub/new.jpg"),
            Some(root.join("sub/new.jpg"))
        );
        // the root itself may be a link
        let root_link = dir.path().join("root-link");
        std::os::unix::fs::symlink(&root, &root_link).unwrap();
        assert!(resolve_inside(&root_link, "sub/ok.jpg").is_some());
        assert_eq!(resolve_inside(&root_link, "evil.jpg"), None);

        // a manifest naming the link is refused on its line
        let m = root.join("m.jsonl");
        std::fs::write(&m, "{\"path\": \"sub/ok.jpg\"}\n{\"path\": \"evil.jpg\"}\n").unwrap();
        let err = list_inputs(&m, None).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("escapes"), "{err}");
        // a folder holding a link out is refused, naming the link
        let err = list_inputs(&root, None).unwrap_err().to_string();
        assert!(
            err.contains("dangling.jpg") && err.contains("outside"),
            "{err}"
        );
        std::fs::remove_file(root.join("evil.jpg")).unwrap();
        std::fs::remove_file(root.join("dangling.jpg")).unwrap();
        let listed: Vec<String> = list_inputs(&root, None)
            .unwrap()
            .into_iter()
            .map(|i| i.path)
            .collect();
        assert_eq!(listed, ["inside.jpg", "sub/ok.jpg"]);
    }

    #[test]
    fn manifests_report_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.jsonl");
        std::fs::write(&m, "{\"path\": \"a.jpg\", \"label\": 3}\n\n{\"path\": 5}\n").unwrap();
        let err = list_inputs(&m, None).unwrap_err().to_string();
        assert!(err.contains("m.jsonl") && err.contains("line 3"), "{err}");
        std::fs::write(
            &m,
            "{\"path\": \"a.jpg\", \"label\": 3}\n{\"path\": \"../x.jpg\"}\n",
        )
        .unwrap();
        let err = list_inputs(&m, None).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("escapes"), "{err}");
        std::fs::write(&m, "{\"path\": \"a.jpg\", \"label\": 3}\n").unwrap();
        let ok = list_inputs(&m, None).unwrap();
        assert_eq!(ok[0].label.as_deref(), Some("3"));
        let c = dir.path().join("m.csv");
        std::fs::write(&c, "path,label\nx/a.jpg,cat\n/abs.jpg,dog\n").unwrap();
        let err = list_inputs(&c, None).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        // a repeated id names its own line (blank lines and the CSV header counted)
        std::fs::write(&m, "{\"path\": \"a.jpg\"}\n\n{\"path\": \"a.jpg\"}\n").unwrap();
        let err = list_inputs(&m, None).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("repeats line 1"),
            "{err}"
        );
        std::fs::write(&c, "path\nx/a.jpg\nx/a.jpg\n").unwrap();
        let err = list_inputs(&c, None).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("repeats line 2"),
            "{err}"
        );
        // bad UTF-8 names its line
        std::fs::write(&m, b"{\"path\": \"a.jpg\"}\n{\"path\": \"\xff.jpg\"}\n").unwrap();
        let err = list_inputs(&m, None).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("UTF-8"), "{err}");
    }
}
