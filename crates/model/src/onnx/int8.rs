//! Post-training int8 quantization of the frozen front: weights symmetric per output channel
//! (depthwise kernels differ too much between channels for one scale) in 7 bits stored as int8,
//! activations asymmetric uint8 per tensor over the range calibration observed, biases int32 at
//! the product of the two scales (what ONNX Runtime's integer convolution expects).
//!
//! Why 7 bits: on x86 without VNNI (AVX2 alone) ONNX Runtime multiplies uint8 by int8 with
//! `vpmaddubsw`, which adds pairs of products in int16 and saturates past 32,767: 255 x 127 x 2
//! overflows, 255 x 63 x 2 does not (ONNX Runtime's own tool calls this `reduce_range`). On a
//! 2-core AMD EPYC with AVX2 alone, 8-bit weights gave maps at worst cosine 0.906 to the float
//! front's and 7-bit ones 0.982 (`cargo test -p unisight-train --test int8_front -- --nocapture`);
//! the Intel Xeon the int8 front was first measured on passed the test's 0.95 with 8 bits.

use std::collections::BTreeMap;

/// The observed range (min, max) of each activation a quantized graph reads, by tensor name:
/// the names [`super::export_prefix_taps`] lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivationRanges(pub BTreeMap<String, (f32, f32)>);

impl ActivationRanges {
    /// Widens `name`'s range to cover `values` (non-finite values are ignored).
    pub fn observe(&mut self, name: &str, values: &[f32]) {
        let (mut lo, mut hi) = self
            .0
            .get(name)
            .copied()
            .unwrap_or((f32::INFINITY, f32::NEG_INFINITY));
        for &v in values.iter().filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        self.0.insert(name.to_string(), (lo, hi));
    }
}

/// uint8 scale and zero point covering [min, max] and 0 (so that zero padding is exact).
pub(super) fn activation_params(min: f32, max: f32) -> (f32, u8) {
    let (lo, hi) = (min.min(0.0), max.max(0.0));
    let scale = ((hi - lo) / 255.0).max(f32::MIN_POSITIVE.sqrt());
    let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as u8;
    (scale, zero_point)
}

/// Bits of a quantized weight, sign included (see the module doc): part of what identifies a
/// cache of int8 maps, so that maps of another quantization are never mixed with these.
pub const WEIGHT_BITS: u32 = 7;

/// Largest quantized weight magnitude.
const WEIGHT_PEAK: f32 = ((1 << (WEIGHT_BITS - 1)) - 1) as f32;

/// Symmetric per output channel: (values in [-63, 63], one scale per channel).
pub(super) fn quantize_weights(values: &[f32], out_channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per_out = values.len() / out_channels;
    let mut quantized = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(out_channels);
    for channel in values.chunks_exact(per_out) {
        let peak = channel.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if peak > 0.0 { peak / WEIGHT_PEAK } else { 1.0 };
        quantized.extend(
            channel
                .iter()
                .map(|v| (v / scale).round().clamp(-WEIGHT_PEAK, WEIGHT_PEAK) as i8),
        );
        scales.push(scale);
    }
    (quantized, scales)
}

/// int32 biases at scale `input_scale * weight_scales[o]`.
pub(super) fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i32> {
    bias.iter()
        .zip(weight_scales)
        .map(|(b, s)| {
            (f64::from(*b) / (f64::from(input_scale) * f64::from(*s)))
                .round()
                .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_cover_the_range_and_keep_zero_exact() {
        let (scale, zp) = activation_params(0.0, 6.0);
        assert_eq!(zp, 0);
        assert!((scale * 255.0 - 6.0).abs() < 1e-5);
        let (scale, zp) = activation_params(-2.0, 6.0);
        let back = |q: u8| (f32::from(q) - f32::from(zp)) * scale;
        assert_eq!(back(zp), 0.0);
        assert!((back(0) + 2.0).abs() <= scale && (back(255) - 6.0).abs() <= scale);
        // a positive-only range still includes 0
        assert_eq!(activation_params(1.0, 3.0).1, 0);
    }

    #[test]
    fn weights_round_trip_within_half_a_step_per_channel() {
        let values = [0.5, -1.0, 0.25, 0.0, 0.01, -0.02, 0.0, 0.0];
        let (q, scales) = quantize_weights(&values, 4);
        assert_eq!(scales.len(), 4);
        assert_eq!(q[1], -63);
        assert!(q.iter().all(|v| v.unsigned_abs() <= 63), "7 bits: {q:?}");
        for (i, v) in values.iter().enumerate() {
            let s = scales[i / 2];
            assert!(
                (f32::from(q[i]) * s - v).abs() <= s / 2.0 + 1e-7,
                "value {i}"
            );
        }
        // an all-zero channel stays zero with a usable scale
        assert_eq!((q[6], q[7], scales[3]), (0, 0, 1.0));
    }

    #[test]
    fn observing_widens_ranges_and_ignores_nan() {
        let mut r = ActivationRanges::default();
        r.observe("x", &[1.0, f32::NAN, -0.5]);
        r.observe("x", &[3.0]);
        assert_eq!(r.0["x"], (-0.5, 3.0));
        assert_eq!(quantize_bias(&[1.0], 0.5, &[0.25]), vec![8]);
    }
}
