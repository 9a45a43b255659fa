use crate::{ModelSpec, Result};

/// The output of embedding a batch of `n` images.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Embedding dimension D.
    pub dim: usize,
    /// L2-normalised embeddings, row-major `[n, D]`.
    pub normalized: Vec<f32>,
    /// The layer-normed, projected vectors before L2 normalisation, `[n, D]`; their sign bits are
    /// the binary codes.
    pub projected: Vec<f32>,
}

impl Embeddings {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.normalized.len() / self.dim.max(1)
    }

    /// True when the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.normalized.is_empty()
    }
}

/// One image's embedding and binary code: what search needs of a query image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEmbedding {
    /// L2-normalised embedding, D values.
    pub embedding: Vec<f32>,
    /// Packed sign code of the projected vector (`numpy.packbits` order).
    pub code: Vec<u8>,
}

impl Embeddings {
    /// The first row as an [`ImageEmbedding`] (a batch of one image).
    pub fn into_first(self) -> ImageEmbedding {
        let dim = self.dim;
        let mut embedding = self.normalized;
        embedding.truncate(dim);
        ImageEmbedding {
            code: crate::code::pack_signs(&self.projected[..dim.min(self.projected.len())]),
            embedding,
        }
    }
}

/// Turns preprocessed pixels into embeddings.
///
/// Two implementations exist, as with `grep-matcher`'s engines: ONNX Runtime in `unisight-embed`
/// (fast, for bulk work and serving) and burn in `unisight-model` (the reference, and what
/// training uses). Serving and evaluation depend only on this trait.
pub trait Embedder: Send {
    /// The model's input and output description.
    fn spec(&self) -> &ModelSpec;

    /// Embeds `batch` images given as NCHW float32 `[batch, 3, S, S]`, already scaled as
    /// [`ModelSpec::preprocess`] says.
    ///
    /// # Errors
    /// [`crate::Error::Inference`] when the backend fails.
    fn embed(&mut self, pixels: &[f32], batch: usize) -> Result<Embeddings>;

    /// A short human-readable name of the backend ("onnxruntime", "burn-flex").
    fn backend(&self) -> &'static str;
}
