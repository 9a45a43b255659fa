//! The embedding head of the paper: LayerNorm without affine -> projection without bias -> L2.
//!
//! LayerNorm centres every dimension around zero, which is what makes the sign a good one-bit
//! code (KDD'19); burn's `LayerNorm` always has a learnable scale, so it is written here with
//! tensor ops.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// LayerNorm epsilon (PyTorch's default).
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Projection from the trunk width to D, or none when D is the trunk width.
#[derive(Module, Debug)]
pub struct EmbeddingHead {
    /// `[trunk_dim, D]`, no bias.
    pub projection: Option<Param<Tensor<2>>>,
}

impl EmbeddingHead {
    /// A head from an explicit `[trunk_dim, D]` matrix (row-major), or identity.
    pub fn new(projection: Option<(usize, usize, Vec<f32>)>, device: &Device) -> Self {
        EmbeddingHead {
            projection: projection.map(|(rows, cols, values)| {
                Param::from_tensor(Tensor::from_data(
                    TensorData::new(values, [rows, cols]),
                    device,
                ))
            }),
        }
    }

    /// `(projected, normalized)`: the layer-normed projection (its signs are the code) and its
    /// L2-normalised version (the embedding).
    ///
    /// # Shapes
    /// `[B, trunk_dim]` -> (`[B, D]`, `[B, D]`)
    pub fn forward(&self, features: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let x = layer_norm(features);
        let projected = match &self.projection {
            Some(p) => x.matmul(p.val()),
            None => x,
        };
        let normalized = l2_normalize(projected.clone());
        (projected, normalized)
    }
}

/// Rows scaled to unit L2 norm (rows of zeros stay zero).
///
/// # Shapes
/// `[B, D]` -> `[B, D]`
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// LayerNorm over the last dimension without affine parameters.
///
/// # Shapes
/// `[B, C]` -> `[B, C]`
pub fn layer_norm(x: Tensor<2>) -> Tensor<2> {
    let mean = x.clone().mean_dim(1);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(1);
    centred / (var + LAYER_NORM_EPSILON).sqrt()
}

/// A `[rows, cols]` matrix with orthonormal columns drawn from `seed` (Gaussian, then modified
/// Gram-Schmidt), the zero-shot projection: it preserves angles between layer-normed features.
pub fn random_orthogonal(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // column-major work space
    let mut columns: Vec<Vec<f64>> = (0..cols)
        .map(|_| (0..rows).map(|_| StandardNormal.sample(&mut rng)).collect())
        .collect();
    for j in 0..cols {
        for i in 0..j {
            let (done, rest) = columns.split_at_mut(j);
            let dot: f64 = done[i].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            for (x, y) in rest[0].iter_mut().zip(&done[i]) {
                *x -= dot * y;
            }
        }
        let norm = columns[j].iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in &mut columns[j] {
            *x /= norm;
        }
    }
    let mut out = vec![0f32; rows * cols];
    for (j, col) in columns.iter().enumerate() {
        for (i, &v) in col.iter().enumerate() {
            out[i * cols + j] = v as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_orthogonal_has_orthonormal_columns_and_is_seeded() {
        let m = random_orthogonal(40, 10, 3);
        for a in 0..10 {
            for b in 0..10 {
                let dot: f32 = (0..40).map(|i| m[i * 10 + a] * m[i * 10 + b]).sum();
                let expected = if a == b { 1.0 } else { 0.0 };
                assert!((dot - expected).abs() < 1e-5, "{a},{b}: {dot}");
            }
        }
        assert_eq!(m, random_orthogonal(40, 10, 3));
        assert_ne!(m, random_orthogonal(40, 10, 4));
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, -2.0, 0.0, 2.0, 8.0], [2, 4]),
            &device,
        );
        let y = layer_norm(x).into_data().try_to_vec::<f32>().unwrap();
        for row in y.chunks(4) {
            let mean: f32 = row.iter().sum::<f32>() / 4.0;
            let var: f32 = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3, "{row:?}");
        }
    }
}
