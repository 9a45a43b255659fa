use serde::{Deserialize, Serialize};

/// Width of the trunk's pooled features, the same for every EfficientNet-Lite variant.
pub const FEATURE_DIM: usize = 1280;

/// The trunk architectures unisight can load ImageNet weights for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// EfficientNet-Lite0, 224 px, 1280-d features.
    EfficientnetLite0,
    /// EfficientNet-Lite1, 240 px.
    EfficientnetLite1,
    /// EfficientNet-Lite2, 260 px.
    EfficientnetLite2,
}

impl Architecture {
    /// Input resolution the weights were trained at.
    pub fn input_size(self) -> usize {
        match self {
            Architecture::EfficientnetLite0 => 224,
            Architecture::EfficientnetLite1 => 240,
            Architecture::EfficientnetLite2 => 260,
        }
    }

    /// Short name used on the command line and in asset file names (`lite0`, ...).
    pub fn short_name(self) -> &'static str {
        match self {
            Architecture::EfficientnetLite0 => "lite0",
            Architecture::EfficientnetLite1 => "lite1",
            Architecture::EfficientnetLite2 => "lite2",
        }
    }

    /// Parses a short name (`lite0`, `lite1`, `lite2`).
    pub fn from_short_name(name: &str) -> Option<Self> {
        match name {
            "lite0" => Some(Architecture::EfficientnetLite0),
            "lite1" => Some(Architecture::EfficientnetLite1),
            "lite2" => Some(Architecture::EfficientnetLite2),
            _ => None,
        }
    }
}

/// How decoded RGB pixels in 0..=255 become network input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Preprocess {
    /// `(x - 127) / 128`, the scaling of the TF-Lite EfficientNet-Lite checkpoints.
    Tf127,
    /// ImageNet mean/std on x/255.
    ImagenetMeanStd,
}

impl Preprocess {
    /// Per-channel `(offset, scale)` so that input = (x - offset) * scale.
    pub fn affine(self) -> [(f32, f32); 3] {
        match self {
            Preprocess::Tf127 => [(127.0, 1.0 / 128.0); 3],
            Preprocess::ImagenetMeanStd => [
                (0.485 * 255.0, 1.0 / (0.229 * 255.0)),
                (0.456 * 255.0, 1.0 / (0.224 * 255.0)),
                (0.406 * 255.0, 1.0 / (0.225 * 255.0)),
            ],
        }
    }
}

/// How the layer-normed trunk features are projected to the embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Projection {
    /// No projection: D equals the trunk width.
    Identity,
    /// A fixed random orthogonal projection drawn from `seed` (zero-shot, before training).
    RandomOrthogonal {
        /// Seed of the draw, so the model file states how to reproduce it.
        seed: u64,
    },
    /// Learned by `unisight train`.
    Trained,
}

/// Everything a user of a model needs to know besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Trunk architecture.
    pub architecture: Architecture,
    /// Square input size in pixels.
    pub input_size: usize,
    /// Pixel scaling.
    pub preprocess: Preprocess,
    /// Width of the pooled trunk features.
    pub trunk_dim: usize,
    /// Embedding dimension D (= number of code bits).
    pub dim: usize,
    /// What the projection is.
    pub projection: Projection,
}

impl ModelSpec {
    /// Number of bytes of one binary code.
    pub fn code_bytes(&self) -> usize {
        crate::code::code_bytes(self.dim)
    }
}
