//! `[model]`: trunk, embedding dimension and where training starts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use unisight_core::Architecture;

use crate::TrainFrom;

/// Model settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// `lite0`, `lite1` or `lite2`.
    #[serde(with = "arch_name")]
    pub architecture: Architecture,
    /// Embedding dimension D (bits of the code).
    pub dim: usize,
    /// First trainable part: `stem`, `blockN`, `head` or `pooled`.
    pub train_from: TrainFrom,
    /// Model file to start from instead of the ImageNet trunk.
    pub init: Option<PathBuf>,
    /// Arithmetic of the frozen front that computes the trunk cache (not of the trained
    /// model, which is exported and served in float either way).
    #[serde(skip_serializing_if = "FrontPrecision::is_float32")]
    pub front_precision: FrontPrecision,
}

/// Arithmetic of the frozen front that computes the trunk cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrontPrecision {
    /// Exact: the maps the served model computes.
    #[default]
    Float32,
    /// Post-training int8 (weights per channel, activations over ranges calibrated on the
    /// run's own images): about twice as fast to build on CPUs with integer dot products; the
    /// trained layers learn on maps within quantization noise of the served ones.
    Int8,
}

impl FrontPrecision {
    /// The default, which task files and cache keys leave unwritten so that they keep the
    /// identity they had before int8 existed.
    pub fn is_float32(&self) -> bool {
        *self == FrontPrecision::Float32
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            architecture: Architecture::EfficientnetLite0,
            dim: 256,
            train_from: TrainFrom::Block(14),
            init: None,
            front_precision: FrontPrecision::Float32,
        }
    }
}

mod arch_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use unisight_core::Architecture;

    pub fn serialize<S: Serializer>(a: &Architecture, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.short_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Architecture, D::Error> {
        let name = String::deserialize(d)?;
        Architecture::from_short_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown architecture `{name}` (lite0, lite1, lite2)"
            ))
        })
    }
}
