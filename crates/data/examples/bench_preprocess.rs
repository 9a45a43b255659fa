//! Per-image cost of the request path before the model: JPEG decoding and preprocessing (centre
//! crop, Catmull-Rom resize to 224, input planes), one thread.
//!
//!     cargo run --release -p unisight-data --example bench_preprocess -- DIR [ITERATIONS]
//!
//! DIR: a folder of JPEG photos (e.g. out/load/photos after scripts/load-test.sh).

use std::time::Instant;

use unisight_core::Preprocess;
use unisight_data::decode::{decode_rgb, DecodeLimits};
use unisight_data::preprocess::to_input;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: bench_preprocess DIR [ITERATIONS]")?;
    let iterations: usize = args.next().map_or(Ok(2000), |n| n.parse())?;
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let jpeg = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
        if jpeg {
            photos.push(std::fs::read(path)?);
        }
    }
    if photos.is_empty() {
        return Err(format!("{dir}: no JPEG photos").into());
    }
    let limits = DecodeLimits::default();
    let mut images = Vec::with_capacity(photos.len());
    let start = Instant::now();
    for i in 0..iterations {
        let image = decode_rgb(&photos[i % photos.len()], &limits)?;
        if images.len() < photos.len() {
            images.push(image);
        }
    }
    let decode = start.elapsed().as_secs_f64() / iterations as f64;
    let mut input = vec![0f32; 3 * 224 * 224];
    let start = Instant::now();
    for i in 0..iterations {
        // the image just decoded, as in a request: the same one repeatedly, so it is in cache
        to_input(
            &images[(i / 100) % images.len()],
            224,
            Preprocess::Tf127,
            &mut input,
        );
    }
    let preprocess = start.elapsed().as_secs_f64() / iterations as f64;
    println!(
        "{} photos, {iterations} iterations: decode {:.3} ms, preprocess {:.3} ms per image",
        photos.len(),
        decode * 1e3,
        preprocess * 1e3
    );
    Ok(())
}
