//! From decoded RGB to network input, as the reference outputs were made: centre square crop,
//! bicubic (Catmull-Rom) resize to S x S, then per-channel affine scaling, NCHW float32.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use unisight_core::Preprocess;

/// Writes the `3 * size * size` input values of `image` into `out`.
///
/// # Panics
/// If `out` has the wrong length (a caller bug).
pub fn to_input(image: &RgbImage, size: usize, preprocess: Preprocess, out: &mut [f32]) {
    assert_eq!(out.len(), 3 * size * size, "input buffer length");
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let (left, top) = ((w - side) / 2, (h - side) / 2);
    // crop first, then resize, as PIL did for the reference: the filter must not see pixels
    // outside the crop
    let square = image::imageops::crop_imm(image, left, top, side, side).to_image();
    let src = ImageRef::new(side, side, square.as_raw(), PixelType::U8x3)
        .expect("RGB buffer matches its dimensions");
    let mut dst = Image::new(size as u32, size as u32, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .expect("same pixel type on both sides");
    let pixels = dst.buffer();
    let plane = size * size;
    let affine = preprocess.affine();
    for (i, px) in pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let (offset, scale) = affine[c];
            out[c * plane + i] = (px[c] as f32 - offset) * scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
