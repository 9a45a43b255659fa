use std::path::Path;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use unisight_core::{Embedder, Embeddings, ModelSpec};

use crate::{Error, Result};

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// Loads the ONNX Runtime shared library at `library` (once per process).
///
/// # Errors
/// [`Error::Runtime`] when the library cannot be loaded.
pub fn init_onnxruntime(library: &Path) -> Result<()> {
    if ENVIRONMENT.get().is_some() {
        return Ok(());
    }
    let env = ort::init_from(library)
        .map_err(|e| Error::Runtime(format!("{}: {e}", library.display())))?
        .with_name("unisight")
        .build()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let _ = ENVIRONMENT.set(env);
    Ok(())
}

/// [`Embedder`] on ONNX Runtime, running a graph exported by `unisight_model::onnx`.
pub struct OrtEmbedder {
    session: Session,
    spec: ModelSpec,
}

impl std::fmt::Debug for OrtEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEmbedder")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl OrtEmbedder {
    /// Opens `onnx` with `threads` intra-op threads (0 = ONNX Runtime's default).
    /// [`init_onnxruntime`] must have been called.
    ///
    /// # Errors
    /// [`Error::Runtime`] when the graph cannot be loaded.
    pub fn new(onnx: &Path, spec: ModelSpec, threads: usize) -> Result<Self> {
        let env = ENVIRONMENT
            .get()
            .ok_or_else(|| Error::Runtime("library not loaded (call init_onnxruntime)".into()))?;
        let rt = |e: String| Error::Runtime(format!("{}: {e}", onnx.display()));
        let mut builder = Session::builder(env)
            .map_err(|e| rt(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| rt(e.to_string()))?;
        if threads > 0 {
            builder = builder
                .with_intra_threads(threads)
                .map_err(|e| rt(e.to_string()))?;
        }
        let session = builder
            .commit_from_file(onnx)
            .map_err(|e| rt(e.to_string()))?;
        Ok(OrtEmbedder { session, spec })
    }

    /// Runs the graph and returns the named outputs, for parity tests and benchmarks.
    ///
    /// # Errors
    /// [`Error::Runtime`] when inference fails.
    pub fn run_outputs(
        &mut self,
        pixels: &[f32],
        batch: usize,
        names: &[&str],
    ) -> Result<Vec<Vec<f32>>> {
        let s = self.spec.input_size;
        let input = TensorRef::from_array_view(([batch, 3, s, s], pixels))
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs!["pixels" => input])
            .map_err(|e| Error::Runtime(e.to_string()))?;
        names
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name)
                    .ok_or_else(|| Error::Runtime(format!("graph has no output {name}")))?;
                let (_, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::Runtime(e.to_string()))?;
                Ok(data.to_vec())
            })
            .collect()
    }
}

impl Embedder for OrtEmbedder {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn embed(&mut self, pixels: &[f32], batch: usize) -> unisight_core::Result<Embeddings> {
        let mut out = self
            .run_outputs(pixels, batch, &["embedding", "projected"])
            .map_err(|e| unisight_core::Error::Inference(e.to_string()))?;
        let projected = out.pop().expect("two outputs");
        let normalized = out.pop().expect("two outputs");
        Ok(Embeddings {
            dim: self.spec.dim,
            normalized,
            projected,
        })
    }

    fn backend(&self) -> &'static str {
        "onnxruntime"
    }
}
