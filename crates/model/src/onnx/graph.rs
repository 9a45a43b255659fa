//! The graph builder: nodes, initializers and the folded conv + batch norm, in float or in the
//! int8 QDQ form ONNX Runtime runs as integer convolutions.

use std::collections::BTreeMap;

use super::int8::{activation_params, quantize_bias, quantize_weights, ActivationRanges};
use super::proto::{attr_int, attr_ints, put_bytes, put_varint_field};
use crate::efficientnet::BN_EPSILON;
use crate::weights::Weights;
use crate::{Error, Result};

/// ONNX `TensorProto.DataType` codes the exporter writes.
const FLOAT: u64 = 1;
const UINT8: u64 = 2;
const INT8: u64 = 3;
const INT32: u64 = 6;

/// TF "SAME" padding of one spatial axis: (begin, end, output size).
pub(super) fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2, out)
}

/// How the activations that convolutions and additions read are written.
#[derive(Default)]
pub(super) enum Activations<'a> {
    /// As they are.
    #[default]
    Float,
    /// As they are, each one's name recorded (graph outputs for calibration).
    Taps(Vec<String>),
    /// Through QuantizeLinear -> DequantizeLinear at uint8 over the calibrated range, with int8
    /// weights: the pattern ONNX Runtime fuses into integer convolutions and additions.
    Int8 {
        ranges: &'a ActivationRanges,
        /// Scale of each tensor already quantized, so that every reader shares one pair.
        scales: BTreeMap<String, f32>,
    },
}

#[derive(Default)]
pub(super) struct GraphBuilder<'a> {
    nodes: Vec<Vec<u8>>,
    initializers: Vec<Vec<u8>>,
    counter: usize,
    relu6_bounds: bool,
    pub(super) activations: Activations<'a>,
}

impl<'a> GraphBuilder<'a> {
    pub(super) fn new(activations: Activations<'a>) -> Self {
        GraphBuilder {
            activations,
            ..GraphBuilder::default()
        }
    }

    fn fresh(&mut self, op: &str) -> String {
        self.counter += 1;
        format!("{}_{}", op.to_lowercase(), self.counter)
    }

    pub(super) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<Vec<u8>>) -> String {
        let out = self.fresh(op);
        self.named_node(op, inputs, &out, attrs);
        out
    }

    pub(super) fn named_node(
        &mut self,
        op: &str,
        inputs: &[&str],
        output: &str,
        attrs: Vec<Vec<u8>>,
    ) {
        let mut n = Vec::new();
        for i in inputs {
            put_bytes(&mut n, 1, i.as_bytes());
        }
        put_bytes(&mut n, 2, output.as_bytes());
        put_bytes(&mut n, 3, output.as_bytes());
        put_bytes(&mut n, 4, op.as_bytes());
        for a in attrs {
            put_bytes(&mut n, 5, &a);
        }
        self.nodes.push(n);
    }

    pub(super) fn initializer(&mut self, name: &str, dims: Vec<i64>, values: Vec<f32>) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.typed_initializer(name, dims, FLOAT, raw)
    }

    fn typed_initializer(&mut self, name: &str, dims: Vec<i64>, kind: u64, raw: Vec<u8>) -> String {
        let mut t = Vec::new();
        for d in dims {
            put_varint_field(&mut t, 1, d as u64);
        }
        put_varint_field(&mut t, 2, kind);
        put_bytes(&mut t, 8, name.as_bytes());
        put_bytes(&mut t, 9, &raw);
        self.initializers.push(t);
        name.to_string()
    }

    pub(super) fn relu6(&mut self, x: &str) -> String {
        if !self.relu6_bounds {
            self.initializer("relu6_min", vec![], vec![0.0]);
            self.initializer("relu6_max", vec![], vec![6.0]);
            self.relu6_bounds = true;
        }
        self.node("Clip", &[x, "relu6_min", "relu6_max"], vec![])
    }

    /// The name an operator reads activation `x` under (its quantized copy in int8 graphs).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when an int8 graph has no calibrated range for `x`.
    pub(super) fn read(&mut self, x: &str) -> Result<String> {
        match &mut self.activations {
            Activations::Float => Ok(x.to_string()),
            Activations::Taps(taps) => {
                if !taps.iter().any(|t| t == x) {
                    taps.push(x.to_string());
                }
                Ok(x.to_string())
            }
            Activations::Int8 { ranges, scales } => {
                let dq = format!("{x}.dq");
                if scales.contains_key(x) {
                    return Ok(dq);
                }
                let &(min, max) = ranges.0.get(x).ok_or_else(|| {
                    Error::InvalidConfig(format!("no calibrated range for activation `{x}`"))
                })?;
                let (scale, zero_point) = activation_params(min, max);
                scales.insert(x.to_string(), scale);
                let s = self.initializer(&format!("{x}.scale"), vec![], vec![scale]);
                let z = self.typed_initializer(
                    &format!("{x}.zero_point"),
                    vec![],
                    UINT8,
                    vec![zero_point],
                );
                let q = format!("{x}.q");
                self.named_node("QuantizeLinear", &[x, &s, &z], &q, vec![]);
                self.named_node("DequantizeLinear", &[&q, &s, &z], &dq, vec![]);
                Ok(dq)
            }
        }
    }

    /// Scale `x` was quantized at, in int8 graphs after [`GraphBuilder::read`].
    fn scale_of(&self, x: &str) -> Option<f32> {
        match &self.activations {
            Activations::Int8 { scales, .. } => scales.get(x).copied(),
            _ => None,
        }
    }

    /// Conv with the batch norm folded in: w' = w * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_bn(
        &mut self,
        w: &Weights,
        conv: &str,
        bn: &str,
        x: &str,
        stride: usize,
        groups: usize,
        size: &mut usize,
    ) -> Result<String> {
        let weight = w.get(&format!("{conv}.weight"), &[None, None, None, None])?;
        let out_ch = weight.shape[0];
        let c = Some(out_ch);
        let gamma = &w.get(&format!("{bn}.weight"), &[c])?.values;
        let beta = &w.get(&format!("{bn}.bias"), &[c])?.values;
        let mean = &w.get(&format!("{bn}.running_mean"), &[c])?.values;
        let var = &w.get(&format!("{bn}.running_var"), &[c])?.values;
        let per_out = weight.values.len() / out_ch;
        let mut folded = weight.values.clone();
        let mut bias = vec![0f32; out_ch];
        for o in 0..out_ch {
            let scale = gamma[o] as f64 / (var[o] as f64 + BN_EPSILON).sqrt();
            for v in &mut folded[o * per_out..(o + 1) * per_out] {
                *v = (*v as f64 * scale) as f32;
            }
            bias[o] = (beta[o] as f64 - mean[o] as f64 * scale) as f32;
        }
        let (kh, kw) = (weight.shape[2], weight.shape[3]);
        let (top, bottom, out_h) = same_padding(*size, kh, stride);
        let (left, right, _) = same_padding(*size, kw, stride);
        *size = out_h;
        let dims: Vec<i64> = weight.shape.iter().map(|&d| d as i64).collect();
        let input = self.read(x)?;
        let (wname, bname) = match self.scale_of(x) {
            None => (
                self.initializer(&format!("{conv}.weight"), dims, folded),
                self.initializer(&format!("{conv}.bias"), vec![out_ch as i64], bias),
            ),
            Some(input_scale) => {
                let (qw, w_scales) = quantize_weights(&folded, out_ch);
                let qb = quantize_bias(&bias, input_scale, &w_scales);
                let b_scales: Vec<f32> = w_scales.iter().map(|s| s * input_scale).collect();
                let weight = self.dequantized(
                    &format!("{conv}.weight"),
                    dims,
                    INT8,
                    qw.iter().map(|&v| v as u8).collect(),
                    w_scales,
                    vec![0u8; out_ch],
                );
                let bias = self.dequantized(
                    &format!("{conv}.bias"),
                    vec![out_ch as i64],
                    INT32,
                    qb.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    b_scales,
                    vec![0u8; 4 * out_ch],
                );
                (weight, bias)
            }
        };
        Ok(self.node(
            "Conv",
            &[&input, &wname, &bname],
            vec![
                attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                attr_ints("strides", &[stride as i64, stride as i64]),
                attr_ints(
                    "pads",
                    &[top as i64, left as i64, bottom as i64, right as i64],
                ),
                attr_int("group", groups as i64),
            ],
        ))
    }

    /// An integer initializer with per-output-channel scales (zero points all 0), read through
    /// DequantizeLinear along axis 0; returns the float tensor's name.
    fn dequantized(
        &mut self,
        name: &str,
        dims: Vec<i64>,
        kind: u64,
        raw: Vec<u8>,
        scales: Vec<f32>,
        zero_points: Vec<u8>,
    ) -> String {
        let channels = scales.len() as i64;
        let q = self.typed_initializer(&format!("{name}.quantized"), dims, kind, raw);
        let s = self.initializer(&format!("{name}.scale"), vec![channels], scales);
        let z = self.typed_initializer(
            &format!("{name}.zero_point"),
            vec![channels],
            kind,
            zero_points,
        );
        let out = format!("{name}.dq");
        self.named_node(
            "DequantizeLinear",
            &[&q, &s, &z],
            &out,
            vec![attr_int("axis", 0)],
        );
        out
    }

    pub(super) fn finish(self, inputs: Vec<Vec<u8>>, outputs: Vec<Vec<u8>>) -> Vec<u8> {
        let mut graph = Vec::new();
        for n in &self.nodes {
            put_bytes(&mut graph, 1, n);
        }
        put_bytes(&mut graph, 2, b"unisight");
        for t in &self.initializers {
            put_bytes(&mut graph, 5, t);
        }
        for i in &inputs {
            put_bytes(&mut graph, 11, i);
        }
        for o in &outputs {
            put_bytes(&mut graph, 12, o);
        }
        let mut model = Vec::new();
        put_varint_field(&mut model, 1, 8); // ir_version
        put_bytes(&mut model, 2, b"unisight");
        put_bytes(&mut model, 3, env!("CARGO_PKG_VERSION").as_bytes());
        put_bytes(&mut model, 7, &graph);
        let mut opset = Vec::new();
        put_bytes(&mut opset, 1, b"");
        put_varint_field(&mut opset, 2, 17);
        put_bytes(&mut model, 8, &opset);
        model
    }
}

pub(super) enum Dim {
    Value(i64),
    Param(&'static str),
}

/// A float tensor's value info; `dims` None leaves the shape unstated.
pub(super) fn value_info(name: &str, dims: Option<&[Dim]>) -> Vec<u8> {
    let mut tensor_type = Vec::new();
    put_varint_field(&mut tensor_type, 1, FLOAT);
    if let Some(dims) = dims {
        let mut shape = Vec::new();
        for d in dims {
            let mut dim = Vec::new();
            match d {
                Dim::Value(v) => put_varint_field(&mut dim, 1, *v as u64),
                Dim::Param(p) => put_bytes(&mut dim, 2, p.as_bytes()),
            }
            put_bytes(&mut shape, 1, &dim);
        }
        put_bytes(&mut tensor_type, 2, &shape);
    }
    let mut type_proto = Vec::new();
    put_bytes(&mut type_proto, 1, &tensor_type);
    let mut vi = Vec::new();
    put_bytes(&mut vi, 1, name.as_bytes());
    put_bytes(&mut vi, 2, &type_proto);
    vi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_same_padding_is_asymmetric_at_stride_two() {
        // 224 -> 112 with a 3x3 stride-2 kernel: one extra row at the bottom, as TF does
        assert_eq!(same_padding(224, 3, 2), (0, 1, 112));
        assert_eq!(same_padding(112, 5, 2), (1, 2, 56));
        assert_eq!(same_padding(14, 5, 1), (2, 2, 14));
        // Lite2's 260 input: odd sizes appear
        assert_eq!(same_padding(65, 3, 2), (1, 1, 33));
    }
}
