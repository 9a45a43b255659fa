//! The model file: one safetensors file holding every weight (PyTorch names, float32) and, in
//! its metadata, `format` = `unisight-model`, `format_version`, and `spec` (the [`ModelSpec`] as
//! JSON: architecture, input size, preprocessing, D, projection kind). Any safetensors reader
//! can open it.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use unisight_core::ModelSpec;

use crate::weights::Weights;
use crate::{Error, Result};

/// Model file format version written and read by this build.
pub const MODEL_FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "unisight-model";

/// Writes a model file atomically.
///
/// # Errors
/// I/O errors naming the file.
pub fn write(path: &Path, spec: &ModelSpec, weights: &Weights) -> Result<()> {
    write_with_tasks(path, spec, weights, None)
}

/// Metadata key holding the task heads' description (JSON) in trained models.
pub const TASKS_KEY: &str = "tasks";

/// Writes a model file atomically, with the task heads' description (names, classes; the
/// proxies themselves are tensors) under [`TASKS_KEY`] when given.
///
/// # Errors
/// I/O errors naming the file; [`Error::BadWeights`] when a weight is NaN or infinite (nothing
/// is written).
pub fn write_with_tasks(
    path: &Path,
    spec: &ModelSpec,
    weights: &Weights,
    tasks: Option<&str>,
) -> Result<()> {
    // a NaN or infinite weight makes every embedding NaN and every code zero: never ship one
    for (name, t) in &weights.tensors {
        let bad = t.values.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::BadWeights {
                path: path.into(),
                what: format!(
                    "tensor `{name}` holds {bad} non-finite values (NaN or infinity); refusing to \
                     write a model whose embeddings would not be finite"
                ),
            });
        }
    }
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .tensors
        .iter()
        .map(|(name, t)| {
            let raw: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), raw).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::BadWeights {
            path: path.into(),
            what: e.to_string(),
        })?;
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT_NAME.to_string()),
        (
            "format_version".to_string(),
            MODEL_FORMAT_VERSION.to_string(),
        ),
        (
            "spec".to_string(),
            serde_json::to_string(spec).expect("spec serialises"),
        ),
    ]);
    if let Some(tasks) = tasks {
        metadata.insert(TASKS_KEY.to_string(), tasks.to_string());
    }
    let data =
        safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| Error::BadWeights {
            path: path.into(),
            what: e.to_string(),
        })?;
    unisight_core::atomic::atomic_write_bytes(path, &data).map_err(|e| match e {
        unisight_core::Error::Io { path, source } => Error::Io { path, source },
        other => Error::io(path, std::io::Error::other(other.to_string())),
    })
}

/// Reads a model file: its spec and weights.
///
/// # Errors
/// [`Error::BadWeights`] for a file that is not a unisight model (naming the missing key),
/// [`Error::UnsupportedVersion`], I/O errors.
pub fn read(path: &Path) -> Result<(ModelSpec, Weights)> {
    read_with_tasks(path).map(|(spec, weights, _)| (spec, weights))
}

/// Reads a model file: its spec, weights, and the task heads' description if it has one.
///
/// # Errors
/// As [`read`].
pub fn read_with_tasks(path: &Path) -> Result<(ModelSpec, Weights, Option<String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(path, &bytes)
}

/// Parses a model file's bytes, already read from `path` (named in errors): for a caller that
/// also needs the bytes themselves, e.g. to checksum them.
///
/// # Errors
/// As [`read`], less I/O.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<(ModelSpec, Weights, Option<String>)> {
    let bad = |what: String| Error::BadWeights {
        path: path.into(),
        what,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let info = meta.metadata().clone().unwrap_or_default();
    if info.get("format").map(String::as_str) != Some(FORMAT_NAME) {
        return Err(bad("metadata key `format` is not `unisight-model`".into()));
    }
    let version: u32 = info
        .get("format_version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("metadata key `format_version` missing or not a number".into()))?;
    if version != MODEL_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.into(),
            found: version,
            supported: MODEL_FORMAT_VERSION,
        });
    }
    let spec: ModelSpec = serde_json::from_str(
        info.get("spec")
            .ok_or_else(|| bad("metadata key `spec` missing".into()))?,
    )
    .map_err(|e| bad(format!("metadata key `spec`: {e}")))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let mut weights = Weights {
        source: path.into(),
        ..Weights::default()
    };
    for (name, view) in tensors.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {name}: dtype {:?}, expected F32",
                view.dtype()
            )));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        weights.insert(name, view.shape().to_vec(), values);
    }
    Ok((spec, weights, info.get(TASKS_KEY).cloned()))
}
