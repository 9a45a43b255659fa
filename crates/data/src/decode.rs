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
    let format = reader
        .format()
        .ok_or_else(|| "not a JPEG, PNG or WebP image".to_string())?;
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
    let mut image = if format == image::ImageFormat::Jpeg {
        decode_jpeg_strictly(bytes)?
    } else {
        DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?
    };
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Decodes a JPEG as the `image` crate does (same decoder, same colour conversion), but in the
/// decoder's strict mode: `image` lets it fill a cut-off scan with grey, so a truncated file
/// would be embedded as a grey picture.
///
/// Strict mode alone does not catch a cut-off file with an end-of-image marker appended: like
/// libjpeg, the decoder takes any marker inside the scan as the end of its data and decodes the
/// rest from zero bits. So the final marker is replaced by a few zero bytes (room for the
/// decoder's read-ahead after a complete scan): a scan that is short of data then runs out, and
/// strict mode refuses it. A complete scan never reaches them, so its pixels are unchanged.
fn decode_jpeg_strictly(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    let without_end_marker;
    let bytes = match final_end_marker(bytes) {
        Some(at) => {
            without_end_marker = [&bytes[..at], &[0u8; 8]].concat();
            &without_end_marker[..]
        }
        None => bytes,
    };
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;

    let cannot = |e: zune_jpeg::errors::DecodeErrors| format!("cannot decode the JPEG: {e}");
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(cannot)?;
    let (Some((w, h)), Some(input)) = (decoder.dimensions(), decoder.input_colorspace()) else {
        return Err("cannot decode the JPEG: no frame header".into());
    };
    // what `image` asks for: grey and RGB(A) as they are, every other space as RGB
    let output = match input {
        ColorSpace::Luma | ColorSpace::LumaA | ColorSpace::RGB | ColorSpace::RGBA => input,
        _ => ColorSpace::RGB,
    };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(output));
    let pixels = decoder.decode().map_err(|e| match e {
        zune_jpeg::errors::DecodeErrors::FormatStatic("Premature end of buffer")
        | zune_jpeg::errors::DecodeErrors::ExhaustedData => {
            "truncated JPEG: its scan ends before the last row".to_string()
        }
        e => cannot(e),
    })?;
    let (w, h) = (w as u32, h as u32);
    let short = || "cannot decode the JPEG: fewer pixels than its size".to_string();
    Ok(match output {
        ColorSpace::Luma => {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        ColorSpace::LumaA => DynamicImage::ImageLumaA8(
            image::GrayAlphaImage::from_raw(w, h, pixels).ok_or_else(short)?,
        ),
        ColorSpace::RGBA => {
            DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?),
    })
}

/// Where the JPEG's final end-of-image marker (`FF D9`, then only zeros or white space) starts.
fn final_end_marker(bytes: &[u8]) -> Option<usize> {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0 && !b.is_ascii_whitespace())?;
    (end >= 1 && bytes[end - 1] == 0xff && bytes[end] == 0xd9).then(|| end - 1)
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
        // large and busy enough that half the file is in the middle of the scan
        let img = RgbImage::from_fn(256, 256, |x, y| {
            image::Rgb([((x * 7) ^ (y * 13)) as u8, (x * y) as u8, (x + y * 3) as u8])
        });
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        let jpeg = out.into_inner();
        let limits = DecodeLimits::default();
        // the strict decode gives exactly the pixels `image` gives
        let decoded = decode_rgb(&jpeg, &limits).unwrap();
        assert_eq!(decoded, image::load_from_memory(&jpeg).unwrap().into_rgb8());
        let cut = &jpeg[..jpeg.len() / 2];
        let err = decode_rgb(cut, &limits).map(|_| ()).unwrap_err();
        assert!(err.contains("truncated JPEG"), "{err}");
        // an end-of-image marker appended does not make a cut-off scan whole
        let patched = [cut, &[0xff, 0xd9]].concat();
        let err = decode_rgb(&patched, &limits).map(|_| ()).unwrap_err();
        assert!(err.contains("truncated JPEG"), "{err}");
        // a complete scan without its end marker, or with zeros after it, still decodes
        let end = jpeg.len() - 2;
        assert!(decode_rgb(&jpeg[..end], &limits).unwrap() == decoded);
        let padded = [&jpeg[..], &[0u8; 5]].concat();
        assert!(decode_rgb(&padded, &limits).unwrap() == decoded);
    }

    /// Every `stride`-th JPEG under `dir`, in name order.
    fn jpegs(dir: &std::path::Path, stride: usize) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("jpg"))
                {
                    found.push(path);
                }
            }
        }
        found.sort();
        found.into_iter().step_by(stride).collect()
    }

    #[test]
    fn real_photos_decode_strictly_to_the_pixels_image_gives() {
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        if !data.join("grocery-store/dataset").is_dir() {
            return unisight_core::testing::skip_for_lack_of_data("no ../shared/data");
        }
        // strict mode must not refuse what real cameras and catalog tools write
        let photos = jpegs(&data, 10);
        assert!(photos.len() > 500, "{} photos", photos.len());
        for path in &photos {
            let bytes = std::fs::read(path).unwrap();
            let strict = decode_rgb(&bytes, &DecodeLimits::default())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut lenient = image::load_from_memory(&bytes).unwrap();
            let orientation = ImageReader::new(Cursor::new(&bytes))
                .with_guessed_format()
                .unwrap()
                .into_decoder()
                .unwrap()
                .orientation()
                .unwrap();
            lenient.apply_orientation(orientation);
            assert!(strict == lenient.into_rgb8(), "{}", path.display());
        }
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
