//! The frozen front a trunk cache holds the output of: its graph, exported in float or
//! quantized to int8 after calibration on the run's own images.

use std::path::Path;

use unisight_embed::OrtEmbedder;
use unisight_model::onnx::{self, ActivationRanges};
use unisight_model::UnifiedModel;

use crate::config::FrontPrecision;
use crate::network::TrainFrom;
use crate::{Error, Result};

/// Images whose first views (the plain one and an augmented one) calibrate an int8 front's
/// activation ranges: 64 views, a few seconds, of which copying every activation out of ONNX
/// Runtime is most.
pub(super) const CALIBRATION_IMAGES: usize = 32;
/// Views of each calibration image.
pub(super) const CALIBRATION_VIEWS: usize = 2;
/// Rows per ONNX Runtime call while calibrating.
const CALIBRATION_BATCH: usize = 32;

/// Which part of the network a cache holds the output of, and in what arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedFront {
    /// The first trainable part: everything before it is the front.
    pub train_from: TrainFrom,
    /// Float (exact) or int8 (faster; see [`FrontPrecision`]).
    pub precision: FrontPrecision,
}

impl From<TrainFrom> for CachedFront {
    fn from(train_from: TrainFrom) -> Self {
        CachedFront {
            train_from,
            precision: FrontPrecision::Float32,
        }
    }
}

/// The float graph of a front, its output and the shape of one output row.
pub(super) struct FrontGraph {
    pub graph: Vec<u8>,
    pub output: &'static str,
    pub row_shape: Vec<usize>,
    /// Blocks in the front (`None`: the whole network up to the pooled features).
    pub end_block: Option<usize>,
}

/// Exports the float front of `model` that `train_from` leaves frozen.
pub(super) fn float_graph(model: &UnifiedModel, train_from: TrainFrom) -> Result<FrontGraph> {
    let strides = unisight_model::efficientnet::block_strides(model.spec.architecture);
    match train_from {
        TrainFrom::Stem => Err(Error::Data(
            "training from the stem reads pixels; there is nothing to cache".into(),
        )),
        TrainFrom::Pooled => Ok(FrontGraph {
            graph: onnx::export(model)?,
            output: onnx::OUTPUT_FEATURES,
            row_shape: vec![model.spec.trunk_dim],
            end_block: None,
        }),
        other => {
            let end = other.first_block(strides.len());
            let channels = model.trunk.blocks[end - 1].project.conv.weight.dims()[0];
            // TF-SAME: every stride-s layer maps n to ceil(n / s); the stem has stride 2
            let side = strides[..end]
                .iter()
                .fold(model.spec.input_size.div_ceil(2), |n, &s| n.div_ceil(s));
            Ok(FrontGraph {
                graph: onnx::export_prefix(model, end)?,
                output: onnx::OUTPUT_MAP,
                row_shape: vec![channels, side, side],
                end_block: Some(end),
            })
        }
    }
}

/// The int8 front of blocks `0..end_block`, its activation ranges observed on `pixels`
/// (`views` rendered views) through the float front. `scratch` holds the calibration graph
/// while it runs.
pub(super) fn int8_graph(
    model: &UnifiedModel,
    end_block: usize,
    pixels: &[f32],
    views: usize,
    scratch: &Path,
) -> Result<Vec<u8>> {
    if views == 0 {
        return Err(Error::Data(
            "an int8 front needs readable images to calibrate on; none could be read".into(),
        ));
    }
    let (taps_graph, taps) = onnx::export_prefix_taps(model, end_block)?;
    let path = scratch.join("calibration.onnx");
    unisight_core::atomic::atomic_write_bytes(&path, &taps_graph)?;
    let mut ranges = ActivationRanges::default();
    ranges.observe(onnx::INPUT, pixels);
    {
        let mut ort = OrtEmbedder::new(&path, model.spec.clone(), 0)?;
        let names: Vec<&str> = taps.iter().map(String::as_str).collect();
        let len = pixels.len() / views;
        for batch in pixels.chunks(CALIBRATION_BATCH * len) {
            let outputs = ort.run_outputs(batch, batch.len() / len, &names)?;
            for (name, values) in names.iter().zip(&outputs) {
                ranges.observe(name, values);
            }
        }
    }
    std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    Ok(onnx::export_prefix_int8(model, end_block, &ranges)?)
}

/// Writes `graph` to `path` unless a graph is there already: the first writer wins, so that
/// builds of one folder, concurrent or later, all use the same int8 ranges.
pub(super) fn install_once(path: &Path, graph: &[u8]) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let staged = path.with_extension(format!("onnx.{}.staged", std::process::id()));
    unisight_core::atomic::atomic_write_bytes(&staged, graph)?;
    let linked = std::fs::hard_link(&staged, path);
    std::fs::remove_file(&staged).map_err(|e| Error::io(&staged, e))?;
    match linked {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}
