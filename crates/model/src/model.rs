//! The unified model: trunk + embedding head, with its [`ModelSpec`].

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use unisight_core::{Architecture, Embedder, Embeddings, ModelSpec, Preprocess, Projection};

use crate::efficientnet::{values_of, EfficientNetLite, FEATURE_DIM};
use crate::head::{random_orthogonal, EmbeddingHead};
use crate::weights::Weights;
use crate::{assets, Error, Result};

/// Name of the projection tensor in model files.
pub const PROJECTION_KEY: &str = "head.projection";

/// Seed of the zero-shot random-orthogonal projection unless told otherwise.
pub const DEFAULT_PROJECTION_SEED: u64 = 0x756e_6973;

/// Trunk + head, on a burn device.
#[derive(Debug)]
pub struct UnifiedModel {
    /// What the model expects and emits.
    pub spec: ModelSpec,
    /// The CNN trunk.
    pub trunk: EfficientNetLite,
    /// The embedding head.
    pub head: EmbeddingHead,
    device: Device,
}

/// Outputs of a forward pass.
#[derive(Debug)]
pub struct Forward {
    /// Pooled trunk features `[B, trunk_dim]`.
    pub features: Tensor<2>,
    /// Layer-normed projection `[B, D]` (signs = code).
    pub projected: Tensor<2>,
    /// L2-normalised embedding `[B, D]`.
    pub normalized: Tensor<2>,
}

impl UnifiedModel {
    /// The zero-shot model: ImageNet trunk of `arch` and a fixed projection to `dim` (identity
    /// when `dim` is the trunk width, else random orthogonal from `seed`). Pixels are scaled by
    /// `(x - 127) / 128`, the TF-Lite checkpoint's convention (see the README for the
    /// measurement behind the choice).
    ///
    /// # Errors
    /// Missing or bad weights; `dim` larger than the trunk width.
    pub fn zero_shot(arch: Architecture, dim: usize, seed: u64, device: &Device) -> Result<Self> {
        let path = assets::weights_path(&assets::assets_dir(), arch)?;
        let weights = Weights::from_pth(&path)?;
        let projection = match dim {
            FEATURE_DIM => Projection::Identity,
            d if d > 0 && d < FEATURE_DIM && d % 8 == 0 => Projection::RandomOrthogonal { seed },
            d => {
                return Err(Error::InvalidConfig(format!(
                    "embedding dimension {d}: must be a multiple of 8 up to the trunk width {FEATURE_DIM}"
                )))
            }
        };
        let spec = ModelSpec {
            architecture: arch,
            input_size: arch.input_size(),
            preprocess: Preprocess::Tf127,
            trunk_dim: FEATURE_DIM,
            dim,
            projection,
        };
        Self::from_weights(spec, &weights, device)
    }

    /// Builds a model from PyTorch-named weights plus, unless the spec says identity, the
    /// projection (`head.projection`, or drawn from the spec's seed).
    ///
    /// # Errors
    /// Missing or misshapen tensors, named by key.
    pub fn from_weights(spec: ModelSpec, weights: &Weights, device: &Device) -> Result<Self> {
        let trunk = EfficientNetLite::from_weights(spec.architecture, weights, device)?;
        let projection = match &spec.projection {
            Projection::Identity => None,
            Projection::RandomOrthogonal { seed } if !weights.contains(PROJECTION_KEY) => Some((
                spec.trunk_dim,
                spec.dim,
                random_orthogonal(spec.trunk_dim, spec.dim, *seed),
            )),
            _ => {
                let p = weights.get(PROJECTION_KEY, &[Some(spec.trunk_dim), Some(spec.dim)])?;
                Some((spec.trunk_dim, spec.dim, p.values.clone()))
            }
        };
        let head = EmbeddingHead::new(projection, device);
        Ok(UnifiedModel {
            spec,
            trunk,
            head,
            device: device.clone(),
        })
    }

    /// Loads a model file (see [`crate::model_file`]).
    ///
    /// # Errors
    /// As [`crate::model_file::read`] and [`UnifiedModel::from_weights`].
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let (spec, weights) = crate::model_file::read(path)?;
        Self::from_weights(spec, &weights, device)
    }

    /// Saves the model file atomically.
    ///
    /// # Errors
    /// I/O errors naming the file.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::model_file::write(path, &self.spec, &self.to_weights())
    }

    /// All weights in PyTorch names (plus `head.projection`).
    pub fn to_weights(&self) -> Weights {
        let mut w = Weights::default();
        self.trunk.to_weights(&mut w);
        if let Some(p) = &self.head.projection {
            let (shape, values) = values_of(p.val());
            w.insert(PROJECTION_KEY, shape, values);
        }
        w
    }

    /// The device the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Full forward pass.
    ///
    /// # Shapes
    /// `[B, 3, S, S]` -> features `[B, trunk_dim]`, projected and normalized `[B, D]`
    pub fn forward(&self, pixels: Tensor<4>) -> Forward {
        let features = self.trunk.forward_features(pixels);
        let (projected, normalized) = self.head.forward(features.clone());
        Forward {
            features,
            projected,
            normalized,
        }
    }

    /// A `[B, 3, S, S]` tensor from NCHW values.
    pub fn input(&self, pixels: &[f32], batch: usize) -> Tensor<4> {
        let s = self.spec.input_size;
        Tensor::from_data(
            TensorData::new(pixels.to_vec(), [batch, 3, s, s]),
            &self.device,
        )
    }
}

/// [`Embedder`] on burn: the reference implementation, and the fallback when the ONNX Runtime
/// library is absent (about 10x slower on CPU).
#[derive(Debug)]
pub struct BurnEmbedder {
    model: UnifiedModel,
}

impl BurnEmbedder {
    /// Wraps a model.
    pub fn new(model: UnifiedModel) -> Self {
        BurnEmbedder { model }
    }
}

impl Embedder for BurnEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.model.spec
    }

    fn embed(&mut self, pixels: &[f32], batch: usize) -> unisight_core::Result<Embeddings> {
        let out = self.model.forward(self.model.input(pixels, batch));
        Ok(Embeddings {
            dim: self.model.spec.dim,
            normalized: values_of(out.normalized).1,
            projected: values_of(out.projected).1,
        })
    }

    fn backend(&self) -> &'static str {
        "burn-flex"
    }
}
