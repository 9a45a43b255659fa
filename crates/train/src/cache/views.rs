//! The views of a training image: view 0 is the plain centre crop evaluation uses, the others
//! random resized crops with flip and colour jitter, each a function of (seed, key, view).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unisight_data::preprocess::{crop_to_input, to_input, Crop};

use crate::config::AugmentConfig;
use crate::plan::mix;

/// Writes view `view` of `image` (0: the plain centre crop; others: a random resized crop,
/// flip and colour jitter drawn from (seed, key, view)), so a view is the same image whether it
/// is cached or rendered in the training loop.
#[allow(clippy::too_many_arguments)]
pub fn render_view(
    image: &image::RgbImage,
    key: &str,
    view: usize,
    augment: &AugmentConfig,
    seed: u64,
    size: usize,
    preprocess: unisight_core::Preprocess,
    out: &mut [f32],
) {
    if view == 0 {
        to_input(image, size, preprocess, out);
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(
            seed,
            u64::from(crc32c::crc32c(key.as_bytes())),
            view as u64,
        ));
        let (crop, flip, colour) = random_view(image.dimensions(), augment, &mut rng);
        crop_to_input(image, crop, flip, colour, size, preprocess, out);
    }
}

/// A random resized crop (area and aspect ratio drawn as in torchvision), a coin for the
/// horizontal flip, and colour factors.
pub fn random_view<R: Rng>(
    dims: (u32, u32),
    augment: &AugmentConfig,
    rng: &mut R,
) -> (Crop, bool, [f32; 3]) {
    let (w, h) = dims;
    let area = (w as f32) * (h as f32);
    let [smin, smax] = augment.crop_scale;
    let [rmin, rmax] = augment.crop_ratio;
    let mut crop = None;
    for _ in 0..10 {
        let target = area * rng.gen_range(smin..=smax);
        let ratio = rng.gen_range(rmin.ln()..=rmax.ln()).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            crop = Some(Crop {
                left: rng.gen_range(0..=w - cw),
                top: rng.gen_range(0..=h - ch),
                width: cw,
                height: ch,
            });
            break;
        }
    }
    let crop = crop.unwrap_or_else(|| {
        let side = w.min(h);
        Crop {
            left: (w - side) / 2,
            top: (h - side) / 2,
            width: side,
            height: side,
        }
    });
    let flip = augment.flip && rng.gen_bool(0.5);
    let j = augment.jitter;
    let colour = if j > 0.0 {
        [0; 3].map(|_| rng.gen_range(1.0 - j..=1.0 + j))
    } else {
        [1.0; 3]
    };
    (crop, flip, colour)
}
