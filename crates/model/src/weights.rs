//! Named float tensors in PyTorch layout: the common currency between the `.pth` weights, the
//! model file, the burn model and the ONNX export.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A tensor as shape + row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Tensors by name (PyTorch state-dict names, e.g. `_blocks.3._bn1.running_var`).
#[derive(Debug, Clone, Default)]
pub struct Weights {
    /// Where they were read from, for error messages.
    pub source: PathBuf,
    /// The tensors.
    pub tensors: BTreeMap<String, NamedTensor>,
}

impl Weights {
    /// Reads a legacy or zip PyTorch `.pth` state dict (float tensors only; integer counters such
    /// as `num_batches_tracked` are skipped).
    ///
    /// # Errors
    /// [`Error::BadWeights`] naming the file when it cannot be parsed.
    pub fn from_pth(path: &Path) -> Result<Weights> {
        let bad = |what: String| Error::BadWeights {
            path: path.into(),
            what,
        };
        if !path.exists() {
            return Err(Error::io(path, std::io::ErrorKind::NotFound.into()));
        }
        let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| bad(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (name, tensor) in reader.tensors() {
            if tensor.dtype() != pytorch_reader::DType::F32 {
                continue;
            }
            let bytes = tensor.read().map_err(|e| bad(format!("{name}: {e}")))?;
            let values: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            tensors.insert(
                name.clone(),
                NamedTensor {
                    shape: tensor.shape().to_vec(),
                    values,
                },
            );
        }
        Ok(Weights {
            source: path.into(),
            tensors,
        })
    }

    /// The tensor `name`, which must have `shape` (`None` entries match any size).
    ///
    /// # Errors
    /// [`Error::BadWeights`] naming the key when it is missing or has another shape.
    pub fn get(&self, name: &str, shape: &[Option<usize>]) -> Result<&NamedTensor> {
        let t = self.tensors.get(name).ok_or_else(|| Error::BadWeights {
            path: self.source.clone(),
            what: format!("tensor {name} missing"),
        })?;
        let ok = t.shape.len() == shape.len()
            && t.shape
                .iter()
                .zip(shape)
                .all(|(a, b)| b.is_none_or(|b| *a == b));
        if !ok {
            return Err(Error::BadWeights {
                path: self.source.clone(),
                what: format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape),
            });
        }
        Ok(t)
    }

    /// True when a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        self.tensors
            .insert(name.into(), NamedTensor { shape, values });
    }
}
