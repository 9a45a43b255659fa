//! Test-time flip averaging: every image is embedded as it is and mirrored left to right, and
//! the two are averaged. Store photos show a product from either side while the catalog shows
//! it once, so the average is closer to what the two have in common. It doubles inference, so
//! it is opt-in (`--flip` where a command embeds), and an index and its queries must agree on it.

use crate::{Embedder, Embeddings, Error, ModelSpec, Result};

/// An [`Embedder`] that averages each image's embedding with its mirror image's.
pub struct FlipAveraged {
    inner: Box<dyn Embedder>,
}

impl FlipAveraged {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Embedder>) -> Self {
        FlipAveraged { inner }
    }
}

impl Embedder for FlipAveraged {
    fn spec(&self) -> &ModelSpec {
        self.inner.spec()
    }

    /// One pass over the batch and its mirror images (`2 x batch`); the projected vectors (whose
    /// signs are the code) are averaged, the float embeddings averaged and normalised again.
    fn embed(&mut self, pixels: &[f32], batch: usize) -> Result<Embeddings> {
        let side = self.spec().input_size;
        if side == 0 || pixels.len() != batch * 3 * side * side {
            return Err(Error::Inference(format!(
                "{} pixel values for {batch} images of 3 x {side} x {side}",
                pixels.len()
            )));
        }
        let mut both = Vec::with_capacity(2 * pixels.len());
        both.extend_from_slice(pixels);
        // NCHW: every row of every channel plane is `side` values; reversing each mirrors it
        for row in pixels.chunks_exact(side) {
            both.extend(row.iter().rev());
        }
        let e = self.inner.embed(&both, 2 * batch)?;
        let dim = e.dim;
        if e.normalized.len() != 2 * batch * dim || e.projected.len() != 2 * batch * dim {
            return Err(Error::Inference(format!(
                "the backend answered {} values for {} images of {dim}",
                e.normalized.len(),
                2 * batch
            )));
        }
        let half = batch * dim;
        let projected = (0..half)
            .map(|i| 0.5 * (e.projected[i] + e.projected[half + i]))
            .collect();
        let mut normalized: Vec<f32> = (0..half)
            .map(|i| e.normalized[i] + e.normalized[half + i])
            .collect();
        for row in normalized.chunks_exact_mut(dim.max(1)) {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(Embeddings {
            dim,
            normalized,
            projected,
        })
    }

    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, Preprocess, Projection};

    /// Embeds an image as (left half's sum, right half's sum) of its first channel: a function
    /// that tells an image from its mirror.
    struct Halves(ModelSpec);

    impl Embedder for Halves {
        fn spec(&self) -> &ModelSpec {
            &self.0
        }
        fn embed(&mut self, pixels: &[f32], batch: usize) -> Result<Embeddings> {
            let s = self.0.input_size;
            let mut projected = Vec::new();
            for image in pixels.chunks_exact(3 * s * s) {
                let (mut left, mut right) = (0.0, 0.0);
                for row in image[..s * s].chunks_exact(s) {
                    left += row[..s / 2].iter().sum::<f32>();
                    right += row[s / 2..].iter().sum::<f32>();
                }
                projected.extend([left, right]);
            }
            assert_eq!(projected.len(), 2 * batch);
            let mut normalized = projected.clone();
            for row in normalized.chunks_exact_mut(2) {
                let n = (row[0] * row[0] + row[1] * row[1]).sqrt();
                row.iter_mut().for_each(|v| *v /= n);
            }
            Ok(Embeddings {
                dim: 2,
                normalized,
                projected,
            })
        }
        fn backend(&self) -> &'static str {
            "halves"
        }
    }

    fn spec(side: usize) -> ModelSpec {
        ModelSpec {
            architecture: Architecture::EfficientnetLite0,
            input_size: side,
            preprocess: Preprocess::Tf127,
            trunk_dim: 2,
            dim: 2,
            projection: Projection::Trained,
        }
    }

    #[test]
    fn an_image_and_its_mirror_get_one_embedding_the_average_of_both() {
        let side = 4;
        // brighter on the left in every channel
        let image: Vec<f32> = (0..3 * side * side)
            .map(|i| if i % side < side / 2 { 1.0 } else { 0.25 })
            .collect();
        let mirror: Vec<f32> = image
            .chunks_exact(side)
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        let mut plain = Halves(spec(side));
        let a = plain.embed(&image, 1).unwrap();
        assert_eq!(a.projected, [8.0, 2.0]);
        let mut flip = FlipAveraged::new(Box::new(Halves(spec(side))));
        let both: Vec<f32> = image.iter().chain(&mirror).copied().collect();
        let e = flip.embed(&both, 2).unwrap();
        assert_eq!(e.projected, [5.0, 5.0, 5.0, 5.0]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        for v in e.normalized {
            assert!((v - h).abs() < 1e-6);
        }
        assert_eq!(flip.backend(), "halves");
        assert!(matches!(
            flip.embed(&image[1..], 1),
            Err(Error::Inference(_))
        ));
    }
}
