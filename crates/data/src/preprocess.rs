//! From decoded RGB to network input, as the reference outputs were made: centre square crop,
//! bicubic (Catmull-Rom) resize to S x S, then per-channel affine scaling, NCHW float32.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use unisight_core::{Embedder, ImageEmbedding, Preprocess};

/// Writes the `3 * size * size` input values of `image` into `out`.
///
/// # Panics
/// If `out` has the wrong length (a caller bug).
pub fn to_input(image: &RgbImage, size: usize, preprocess: Preprocess, out: &mut [f32]) {
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let crop = Crop {
        left: (w - side) / 2,
        top: (h - side) / 2,
        width: side,
        height: side,
    };
    crop_to_input(image, crop, false, [1.0; 3], size, preprocess, out);
}

/// Embeds one decoded image: the one way every caller (the CLI's search, the service's workers)
/// goes from an image to its embedding and code. `pixels` is scratch space, resized as needed,
/// so that a worker reuses one buffer.
///
/// # Errors
/// [`unisight_core::Error::Inference`] when the backend fails.
pub fn embed_image(
    embedder: &mut dyn Embedder,
    image: &RgbImage,
    pixels: &mut Vec<f32>,
) -> unisight_core::Result<ImageEmbedding> {
    let spec = embedder.spec();
    let (size, preprocess) = (spec.input_size, spec.preprocess);
    pixels.resize(3 * size * size, 0.0);
    to_input(image, size, preprocess, pixels);
    Ok(embedder.embed(pixels, 1)?.into_first())
}

/// A rectangle of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width (> 0).
    pub width: u32,
    /// Height (> 0).
    pub height: u32,
}

/// Writes the input values of `crop` of `image`, resized to `size` x `size`, optionally
/// mirrored, with colour factors `[brightness, contrast, saturation]` (1 = unchanged) applied
/// before scaling: the path of both plain embedding and training augmentation.
///
/// # Panics
/// If `out` has the wrong length or the crop lies outside the image (caller bugs).
pub fn crop_to_input(
    image: &RgbImage,
    crop: Crop,
    flip: bool,
    colour: [f32; 3],
    size: usize,
    preprocess: Preprocess,
    out: &mut [f32],
) {
    assert_eq!(out.len(), 3 * size * size, "input buffer length");
    assert!(crop.width > 0 && crop.height > 0, "empty crop");
    // crop first, then resize, as PIL did for the reference: the filter must not see pixels
    // outside the crop
    let whole = crop.left == 0 && crop.top == 0 && (crop.width, crop.height) == image.dimensions();
    let region;
    let raw = if whole {
        image.as_raw()
    } else {
        region = image::imageops::crop_imm(image, crop.left, crop.top, crop.width, crop.height)
            .to_image();
        region.as_raw()
    };
    let src = ImageRef::new(crop.width, crop.height, raw, PixelType::U8x3)
        .expect("RGB buffer matches its dimensions");
    RESIZED.with_borrow_mut(|(resizer, dst)| {
        if (dst.width(), dst.height()) != (size as u32, size as u32) {
            *dst = Image::new(size as u32, size as u32, PixelType::U8x3);
        }
        let options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
        resizer
            .resize(&src, dst, &options)
            .expect("same pixel type on both sides");
        to_planes(dst.buffer(), size, flip, colour, preprocess, out);
    });
}

thread_local! {
    /// Each thread's resizer and resized image, kept between calls: a fresh 150 KB image per
    /// call costs page faults and zeroing that add up to a third of the resize itself.
    static RESIZED: std::cell::RefCell<(Resizer, Image<'static>)> =
        std::cell::RefCell::new((Resizer::new(), Image::new(1, 1, PixelType::U8x3)));
}

/// Writes resized RGB `pixels` as the network's planes, with the augmentation applied.
fn to_planes(
    pixels: &[u8],
    size: usize,
    flip: bool,
    colour: [f32; 3],
    preprocess: Preprocess,
    out: &mut [f32],
) {
    let plane = size * size;
    let affine = preprocess.affine();
    let [brightness, contrast, saturation] = colour;
    let plain = colour == [1.0; 3];
    let mean_grey = if plain {
        0.0
    } else {
        pixels
            .chunks_exact(3)
            .map(|p| grey(p[0] as f32, p[1] as f32, p[2] as f32))
            .sum::<f32>()
            / (plane as f32)
            * brightness
    };
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    let [(r_offset, r_scale), (g_offset, g_scale), (b_offset, b_scale)] = affine;
    for (y, row) in pixels.chunks_exact(3 * size).enumerate() {
        let at = y * size..(y + 1) * size;
        let (red, green, blue) = (&mut red[at.clone()], &mut green[at.clone()], &mut blue[at]);
        for (x, px) in row.chunks_exact(3).enumerate() {
            let mut rgb = [px[0] as f32, px[1] as f32, px[2] as f32];
            if !plain {
                for v in &mut rgb {
                    *v *= brightness;
                }
                let g = grey(rgb[0], rgb[1], rgb[2]);
                for v in &mut rgb {
                    *v = g + (*v - g) * saturation;
                    *v = (mean_grey + (*v - mean_grey) * contrast).clamp(0.0, 255.0);
                }
            }
            let col = if flip { size - 1 - x } else { x };
            red[col] = (rgb[0] - r_offset) * r_scale;
            green[col] = (rgb[1] - g_offset) * g_scale;
            blue[col] = (rgb[2] - b_offset) * b_scale;
        }
    }
}

fn grey(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_mirrors_columns_and_colour_one_is_identity() {
        let img = RgbImage::from_fn(8, 8, |x, _| image::Rgb([if x < 4 { 255 } else { 0 }, 0, 0]));
        let crop = Crop {
            left: 0,
            top: 0,
            width: 8,
            height: 8,
        };
        let mut plain = vec![0f32; 3 * 8 * 8];
        let mut flipped = plain.clone();
        crop_to_input(
            &img,
            crop,
            false,
            [1.0; 3],
            8,
            Preprocess::Tf127,
            &mut plain,
        );
        crop_to_input(
            &img,
            crop,
            true,
            [1.0; 3],
            8,
            Preprocess::Tf127,
            &mut flipped,
        );
        for y in 0..8 {
            for x in 0..8 {
                assert_eq!(plain[y * 8 + x], flipped[y * 8 + 7 - x]);
            }
        }
        let mut to = vec![0f32; 3 * 8 * 8];
        to_input(&img, 8, Preprocess::Tf127, &mut to);
        assert_eq!(to, plain);
        // darker: every red value goes down
        let mut dark = plain.clone();
        crop_to_input(
            &img,
            crop,
            false,
            [0.5, 1.0, 1.0],
            8,
            Preprocess::Tf127,
            &mut dark,
        );
        assert!(dark[0] < plain[0]);
    }

    #[test]
    fn uniform_image_maps_to_its_scaled_value_and_crops_the_centre() {
        // left third red, middle white, right third blue: the centre crop of a 3:1 image is white
        let img = RgbImage::from_fn(300, 100, |x, _| match x {
            0..100 => image::Rgb([255, 0, 0]),
            100..200 => image::Rgb([255, 255, 255]),
            _ => image::Rgb([0, 0, 255]),
        });
        let mut out = vec![0f32; 3 * 16 * 16];
        to_input(&img, 16, Preprocess::Tf127, &mut out);
        for v in &out {
            assert!((v - 1.0).abs() < 1e-6, "{v}");
        }
    }
}
