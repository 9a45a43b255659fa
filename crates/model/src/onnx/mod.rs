//! ONNX export of a [`UnifiedModel`], built directly as protobuf bytes.
//!
//! Why by hand: burn-onnx 0.22 has no `Clamp` lowering, and ReLU6 written as Relu/Sub pairs makes
//! ONNX Runtime 3x slower. Here every conv has its batch norm folded in (exact algebra), ReLU6
//! is `Clip(0, 6)` (which ORT fuses into the conv), and TF-SAME padding becomes explicit
//! asymmetric `pads` computed for the model's fixed input size. The batch dimension is dynamic.
//!
//! Graph: `pixels` `[batch, 3, S, S]` -> outputs `embedding` (L2-normalised, `[batch, D]`),
//! `projected` (layer-normed projection before normalisation; its signs are the code) and
//! `features` (pooled trunk features, `[batch, trunk_dim]`). Opset 17, IR version 8.
//!
//! The frozen front training caches can also be written in int8 ([`export_prefix_int8`]), from
//! activation ranges observed on real images through [`export_prefix_taps`].

mod graph;
mod int8;
mod proto;

use std::path::Path;

use crate::efficientnet::block_strides;
use crate::head::LAYER_NORM_EPSILON;
use crate::model::{UnifiedModel, PROJECTION_KEY};
use crate::weights::Weights;
use crate::{Error, Result};
use graph::{value_info, Activations, Dim, GraphBuilder};
pub use int8::{ActivationRanges, WEIGHT_BITS as INT8_WEIGHT_BITS};
use proto::{attr_float, attr_int};

/// Input name of exported graphs.
pub const INPUT: &str = "pixels";
/// Output with the L2-normalised embedding.
pub const OUTPUT_EMBEDDING: &str = "embedding";
/// Output with the pre-normalisation vector (signs = binary code).
pub const OUTPUT_PROJECTED: &str = "projected";
/// Output with the pooled trunk features.
pub const OUTPUT_FEATURES: &str = "features";

/// Serialises `model` as an ONNX model.
///
/// # Errors
/// [`Error::BadWeights`] if a weight the graph needs is missing.
pub fn export(model: &UnifiedModel) -> Result<Vec<u8>> {
    let weights = model.to_weights();
    let spec = &model.spec;
    let mut g = GraphBuilder::default();
    let blocks = block_strides(spec.architecture).len();
    let (mut x, _, mut size) = trunk_prefix(&mut g, &weights, spec, blocks)?;
    x = g.conv_bn(&weights, "_conv_head", "_bn1", &x, 1, 1, &mut size)?;
    x = g.relu6(&x);
    let pooled = g.node("GlobalAveragePool", &[&x], vec![]);
    g.named_node(
        "Flatten",
        &[&pooled],
        OUTPUT_FEATURES,
        vec![attr_int("axis", 1)],
    );
    let ones = g.initializer(
        "ln_scale",
        vec![spec.trunk_dim as i64],
        vec![1.0; spec.trunk_dim],
    );
    let ln = g.node(
        "LayerNormalization",
        &[OUTPUT_FEATURES, &ones],
        vec![
            attr_int("axis", -1),
            attr_float("epsilon", LAYER_NORM_EPSILON as f32),
        ],
    );
    if weights.contains(PROJECTION_KEY) {
        let p = weights.get(PROJECTION_KEY, &[Some(spec.trunk_dim), Some(spec.dim)])?;
        let pw = g.initializer(
            PROJECTION_KEY,
            vec![spec.trunk_dim as i64, spec.dim as i64],
            p.values.clone(),
        );
        g.named_node("MatMul", &[&ln, &pw], OUTPUT_PROJECTED, vec![]);
    } else {
        g.named_node("Identity", &[&ln], OUTPUT_PROJECTED, vec![]);
    }
    g.named_node(
        "LpNormalization",
        &[OUTPUT_PROJECTED],
        OUTPUT_EMBEDDING,
        vec![attr_int("axis", 1), attr_int("p", 2)],
    );
    let s = spec.input_size as i64;
    let inputs = vec![pixels_info(s)];
    let outputs = vec![
        value_info(
            OUTPUT_EMBEDDING,
            Some(&[Dim::Param("batch"), Dim::Value(spec.dim as i64)]),
        ),
        value_info(
            OUTPUT_PROJECTED,
            Some(&[Dim::Param("batch"), Dim::Value(spec.dim as i64)]),
        ),
        value_info(
            OUTPUT_FEATURES,
            Some(&[Dim::Param("batch"), Dim::Value(spec.trunk_dim as i64)]),
        ),
    ];
    Ok(g.finish(inputs, outputs))
}

/// Adds the stem and the first `end_block` MBConv blocks; returns the last output's name, its
/// channel count and spatial size.
fn trunk_prefix(
    g: &mut GraphBuilder,
    weights: &Weights,
    spec: &unisight_core::ModelSpec,
    end_block: usize,
) -> Result<(String, usize, usize)> {
    let mut size = spec.input_size;
    let mut x = INPUT.to_string();
    x = g.conv_bn(weights, "_conv_stem", "_bn0", &x, 2, 1, &mut size)?;
    x = g.relu6(&x);
    for (i, &stride) in block_strides(spec.architecture)
        .iter()
        .enumerate()
        .take(end_block)
    {
        let p = format!("_blocks.{i}");
        let input = x.clone();
        let in_ch = channels_in(weights, &p)?;
        if weights.contains(&format!("{p}._expand_conv.weight")) {
            x = g.conv_bn(
                weights,
                &format!("{p}._expand_conv"),
                &format!("{p}._bn0"),
                &x,
                1,
                1,
                &mut size,
            )?;
            x = g.relu6(&x);
        }
        let groups = weights
            .get(
                &format!("{p}._depthwise_conv.weight"),
                &[None, Some(1), None, None],
            )?
            .shape[0];
        x = g.conv_bn(
            weights,
            &format!("{p}._depthwise_conv"),
            &format!("{p}._bn1"),
            &x,
            stride,
            groups,
            &mut size,
        )?;
        x = g.relu6(&x);
        x = g.conv_bn(
            weights,
            &format!("{p}._project_conv"),
            &format!("{p}._bn2"),
            &x,
            1,
            1,
            &mut size,
        )?;
        let out_ch = weights
            .get(
                &format!("{p}._project_conv.weight"),
                &[None, None, None, None],
            )?
            .shape[0];
        if stride == 1 && in_ch == out_ch {
            let (a, b) = (g.read(&x)?, g.read(&input)?);
            x = g.node("Add", &[&a, &b], vec![]);
        }
    }
    let channels = if end_block == 0 {
        weights
            .get("_conv_stem.weight", &[None, None, None, None])?
            .shape[0]
    } else {
        weights
            .get(
                &format!("_blocks.{}._project_conv.weight", end_block - 1),
                &[None, None, None, None],
            )?
            .shape[0]
    };
    Ok((x, channels, size))
}

/// Output of [`export_prefix`] graphs.
pub const OUTPUT_MAP: &str = "map";

/// Serialises the frozen front of `model`: the stem and blocks `0..end_block`, output [`OUTPUT_MAP`]
/// `[batch, C, h, w]`. Training caches these maps once and trains the rest.
///
/// # Errors
/// [`Error::BadWeights`] if a weight is missing; [`Error::InvalidConfig`] if `end_block` is 0 or
/// past the last block.
pub fn export_prefix(model: &UnifiedModel, end_block: usize) -> Result<Vec<u8>> {
    Ok(prefix(model, end_block, Activations::Float)?.0)
}

/// The float front of [`export_prefix`] with, as further outputs, every activation a
/// convolution or addition reads except the input itself: the tensors whose ranges
/// [`export_prefix_int8`] needs. Returns the graph and those names (observe [`INPUT`]'s range
/// from the pixels).
///
/// # Errors
/// As [`export_prefix`].
pub fn export_prefix_taps(
    model: &UnifiedModel,
    end_block: usize,
) -> Result<(Vec<u8>, Vec<String>)> {
    prefix(model, end_block, Activations::Taps(Vec::new()))
}

/// The front of [`export_prefix`] in int8: every convolution reads uint8 activations (over
/// `ranges`, which must name [`INPUT`] and each tap of [`export_prefix_taps`]) and int8 weights.
/// About twice as fast on CPUs with integer dot products, its maps within quantization noise
/// of the float ones.
///
/// # Errors
/// As [`export_prefix`]; [`Error::InvalidConfig`] when a range is missing.
pub fn export_prefix_int8(
    model: &UnifiedModel,
    end_block: usize,
    ranges: &ActivationRanges,
) -> Result<Vec<u8>> {
    let activations = Activations::Int8 {
        ranges,
        scales: Default::default(),
    };
    Ok(prefix(model, end_block, activations)?.0)
}

fn prefix(
    model: &UnifiedModel,
    end_block: usize,
    activations: Activations,
) -> Result<(Vec<u8>, Vec<String>)> {
    let spec = &model.spec;
    let blocks = block_strides(spec.architecture).len();
    if end_block == 0 || end_block > blocks {
        return Err(Error::InvalidConfig(format!(
            "trunk prefix must end after block 1..={blocks}, not {end_block}"
        )));
    }
    let weights = model.to_weights();
    let mut g = GraphBuilder::new(activations);
    let (x, channels, size) = trunk_prefix(&mut g, &weights, spec, end_block)?;
    g.named_node("Identity", &[&x], OUTPUT_MAP, vec![]);
    let mut outputs = vec![value_info(
        OUTPUT_MAP,
        Some(&[
            Dim::Param("batch"),
            Dim::Value(channels as i64),
            Dim::Value(size as i64),
            Dim::Value(size as i64),
        ]),
    )];
    let taps = match &g.activations {
        Activations::Taps(taps) => taps.iter().filter(|t| *t != INPUT).cloned().collect(),
        _ => Vec::new(),
    };
    outputs.extend(taps.iter().map(|t| value_info(t, None)));
    let graph = g.finish(vec![pixels_info(spec.input_size as i64)], outputs);
    Ok((graph, taps))
}

fn pixels_info(side: i64) -> Vec<u8> {
    value_info(
        INPUT,
        Some(&[
            Dim::Param("batch"),
            Dim::Value(3),
            Dim::Value(side),
            Dim::Value(side),
        ]),
    )
}

/// Exports `model` to `path` atomically.
///
/// # Errors
/// As [`export`], plus I/O errors naming the file.
pub fn export_to_file(model: &UnifiedModel, path: &Path) -> Result<()> {
    let bytes = export(model)?;
    unisight_core::atomic::atomic_write_bytes(path, &bytes)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

fn channels_in(w: &Weights, p: &str) -> Result<usize> {
    Ok(if w.contains(&format!("{p}._expand_conv.weight")) {
        w.get(
            &format!("{p}._expand_conv.weight"),
            &[None, None, None, None],
        )?
        .shape[1]
    } else {
        w.get(
            &format!("{p}._depthwise_conv.weight"),
            &[None, Some(1), None, None],
        )?
        .shape[0]
    })
}
