//! Proxy banks too large to update densely: with proxy subsampling, a step touches only the
//! proxies in its softmax, so only those rows are gathered into the graph and only they are
//! updated, by a lazy AdamW (or SGD with momentum) whose moments and step counts are kept per
//! row (as TensorFlow's LazyAdam / PyTorch's SparseAdam do). A dense optimizer would read and
//! write all `classes x D` values and moments every step, which is what makes a million-class
//! bank slow.

use crate::config::OptimizerKind;

/// One task's proxies with per-row optimizer state.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseBank {
    /// Number of classes.
    pub classes: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// `[classes, D]` proxies (not normalised; the loss normalises).
    pub values: Vec<f32>,
    /// First moment (AdamW) or momentum buffer (SGD), `[classes, D]`.
    pub moment1: Vec<f32>,
    /// Second moment (AdamW), `[classes, D]`.
    pub moment2: Vec<f32>,
    /// Updates each row has had (for Adam's bias correction).
    pub steps: Vec<u32>,
}

/// Update rule settings.
#[derive(Debug, Clone, Copy)]
pub struct SparseOptim {
    /// AdamW or SGD.
    pub kind: OptimizerKind,
    /// Decoupled weight decay (AdamW) or L2 penalty (SGD).
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
}

impl SparseBank {
    /// A bank from initial values.
    pub fn new(classes: usize, dim: usize, values: Vec<f32>) -> SparseBank {
        assert_eq!(values.len(), classes * dim, "bank shape");
        SparseBank {
            classes,
            dim,
            values,
            moment1: vec![0.0; classes * dim],
            moment2: vec![0.0; classes * dim],
            steps: vec![0; classes],
        }
    }

    /// The rows `subset`, concatenated.
    pub fn gather(&self, subset: &[usize]) -> Vec<f32> {
        subset
            .iter()
            .flat_map(|&r| {
                self.values[r * self.dim..(r + 1) * self.dim]
                    .iter()
                    .copied()
            })
            .collect()
    }

    /// Applies `grad` (`[subset.len(), D]`) to the rows `subset` with learning rate `lr`.
    pub fn update(&mut self, subset: &[usize], grad: &[f32], lr: f64, optim: &SparseOptim) {
        let d = self.dim;
        for (i, &r) in subset.iter().enumerate() {
            let g = &grad[i * d..(i + 1) * d];
            let w = &mut self.values[r * d..(r + 1) * d];
            let m = &mut self.moment1[r * d..(r + 1) * d];
            let v = &mut self.moment2[r * d..(r + 1) * d];
            self.steps[r] += 1;
            match optim.kind {
                OptimizerKind::Adamw => {
                    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
                    let k = i32::try_from(self.steps[r]).unwrap_or(i32::MAX);
                    let c1 = 1.0 - b1.powi(k);
                    let c2 = 1.0 - b2.powi(k);
                    for j in 0..d {
                        let gj = f64::from(g[j]);
                        let mj = b1 * f64::from(m[j]) + (1.0 - b1) * gj;
                        let vj = b2 * f64::from(v[j]) + (1.0 - b2) * gj * gj;
                        m[j] = mj as f32;
                        v[j] = vj as f32;
                        let wj = f64::from(w[j]) * (1.0 - lr * optim.weight_decay);
                        w[j] = (wj - lr * (mj / c1) / ((vj / c2).sqrt() + eps)) as f32;
                    }
                }
                OptimizerKind::Sgd => {
                    for j in 0..d {
                        let gj = f64::from(g[j]) + optim.weight_decay * f64::from(w[j]);
                        let mj = optim.momentum * f64::from(m[j]) + gj;
                        m[j] = mj as f32;
                        w[j] = (f64::from(w[j]) - lr * mj) as f32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_subset_moves_and_adam_steps_match_the_dense_formula() {
        let mut bank = SparseBank::new(4, 2, vec![1.0; 8]);
        let optim = SparseOptim {
            kind: OptimizerKind::Adamw,
            weight_decay: 0.0,
            momentum: 0.9,
        };
        bank.update(&[1, 3], &[0.5, -0.5, 2.0, 0.0], 0.1, &optim);
        // first Adam step: m/c1 = g, v/c2 = g^2, so the move is lr * sign(g) (g != 0)
        assert_eq!(&bank.values[0..2], &[1.0, 1.0]);
        assert!((bank.values[2] - 0.9).abs() < 1e-6 && (bank.values[3] - 1.1).abs() < 1e-6);
        assert!((bank.values[6] - 0.9).abs() < 1e-6 && bank.values[7] == 1.0);
        assert_eq!(bank.steps, vec![0, 1, 0, 1]);
        assert_eq!(
            bank.gather(&[3, 1]),
            vec![
                bank.values[6],
                bank.values[7],
                bank.values[2],
                bank.values[3]
            ]
        );
    }
}
