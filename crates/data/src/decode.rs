//! Guarded image decoding.
//!
//! A decompression bomb (say a 30000x30000 PNG of a few kilobytes) is refused from its header,
//! before a pixel buffer is allocated; a corrupt, truncated, empty or non-image file gets a
//! one-line reason. Nothing here panics on bad bytes.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::{Error, Result};

/// Limits applied before decoding.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Largest width x height accepted.
    pub max_pixels: u64,
    /// Largest decoded image accepted, in bytes (width x height x channels x bytes per
    /// channel, from the header): a 16-bit or alpha image costs two to eight times its pixel
    /// count, which the pixel limit alone lets through.
    pub max_decoded_bytes: u64,
}

/// Default [`DecodeLimits::max_decoded_bytes`]: a 40-megapixel RGBA photo at 8 bits per channel.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 160_000_000;

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 64 << 20,
            max_pixels: 40_000_000,
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
        }
    }
}

/// Reads and decodes the image at `path` to RGB, EXIF orientation applied.
///
/// # Errors
/// [`Error::BadImage`] with a one-line reason naming the file.
pub fn load_rgb(path: &Path, limits: &DecodeLimits) -> Result<RgbImage> {
    let bad = |reason: String| Error::BadImage {
        path: path.into(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() == 0 {
        return Err(bad("empty file".into()));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(bad(format!(
            "file of {} bytes exceeds the limit of {}",
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    decode_rgb(&bytes, limits).map_err(bad)
}

/// Decodes image bytes to RGB with the same checks as [`load_rgb`]; the error is the reason.
///
/// # Errors
/// A one-line reason.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> std::result::Result<RgbImage, String> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    match reader.format() {
        None => return Err("not a JPEG, PNG or WebP image".into()),
        // the JPEG decoder fills a cut-off scan with grey instead of failing
        Some(image::ImageFormat::Jpeg) if !ends_with_jpeg_eoi(bytes) => {
            return Err("truncated JPEG (no end-of-image marker)".into())
        }
        Some(_) => {}
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (w, h) = decoder.dimensions();
    let pixels = w as u64 * h as u64;
    if pixels == 0 {
        return Err("image has zero width or height".into());
    }
    if pixels > limits.max_pixels {
        return Err(format!(
            "{w}x{h} pixels exceeds the limit of {} (refused before decoding)",
            limits.max_pixels
        ));
    }
    let decoded = decoder.total_bytes();
    if decoded > limits.max_decoded_bytes {
        return Err(format!(
            "{w}x{h} {:?} pixels decode to {decoded} bytes, over the limit of {} (refused before \
             decoding)",
            decoder.color_type(),
            limits.max_decoded_bytes
        ));
    }
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

fn ends_with_jpeg_eoi(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0 && !b.is_ascii_whitespace());
    end.is_some_and(|e| e >= 1 && bytes[e - 1] == 0xff && bytes[e] == 0xd9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// CRC-32 (ISO-HDLC), as PNG chunks use.
    fn png_crc(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn decodes_and_refuses_bad_input() {
        let limits = DecodeLimits::default();
        let good = png(20, 10);
        assert_eq!(decode_rgb(&good, &limits).unwrap().dimensions(), (20, 10));
        assert!(decode_rgb(b"hello world", &limits)
            .unwrap_err()
            .contains("not a JPEG"));
        assert!(decode_rgb(&good[..good.len() / 2], &limits).is_err());
        assert!(decode_rgb(&[], &limits).is_err());
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 4, y as u8 * 4, 9]));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        assert!(decode_rgb(&jpeg, &DecodeLimits::default()).is_ok());
        let err = decode_rgb(&jpeg[..jpeg.len() / 2], &DecodeLimits::default()).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn a_deep_image_is_refused_by_its_decoded_bytes() {
        // 2000 x 2000 16-bit RGB: 4 MP, inside the pixel limit, 24 MB decoded
        let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(2000, 2000, |x, _| {
            image::Rgb([x as u16; 3])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb16(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        let png16 = out.into_inner();
        let limits = DecodeLimits {
            max_decoded_bytes: 16_000_000,
            ..DecodeLimits::default()
        };
        let err = decode_rgb(&png16, &limits).unwrap_err();
        assert!(
            err.contains("24000000 bytes") && err.contains("Rgb16"),
            "{err}"
        );
        assert!(decode_rgb(&png16, &DecodeLimits::default()).is_ok());
    }

    #[test]
    fn bomb_is_refused_from_the_header() {
        // a valid PNG header claiming 30000 x 30000 pixels (2.7 GB decoded) with almost no data
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&30000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&30000u32.to_be_bytes());
        // IHDR's CRC-32 covers its type and data (bytes 12..29); fix it so that only our size
        // check can refuse the file
        let crc = png_crc(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        let err = decode_rgb(&bomb, &DecodeLimits::default()).unwrap_err();
        assert!(
            err.contains("30000x30000") && err.contains("refused before decoding"),
            "{err}"
        );
        let limits = DecodeLimits {
            max_pixels: 100,
            ..Default::default()
        };
        let err = decode_rgb(&png(20, 10), &limits).unwrap_err();
        assert!(err.contains("exceeds the limit"), "{err}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.jpg");
        std::fs::write(&p, b"").unwrap();
        let msg = load_rgb(&p, &DecodeLimits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("empty.jpg") && msg.contains("empty file"),
            "{msg}"
        );
    }
}
