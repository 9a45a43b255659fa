//! Fashion-MNIST (Zalando, MIT) as an ImageFolder data set: the gzipped IDX files that Debian's
//! `dataset-fashion-mnist` installs in `/usr/share/datasets/fashion-mnist` become
//! `OUT/{train,test}/<class>/<n>.png`, so any fresh machine has real product images to train,
//! evaluate and serve without downloading from anywhere but the package archive.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Class names by label id, as in the data set's README (folder-safe spelling).
pub const CLASSES: [&str; 10] = [
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
];

/// Where Debian's package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Writes at most `per_class` images of each class of each split (`train`, `test`) under
/// `out`; returns the images written per split. Existing files are kept, so a rerun is cheap.
///
/// # Errors
/// A missing or malformed IDX file (named), or an image that cannot be written.
pub fn import(from: &Path, out: &Path, per_class: [usize; 2]) -> Result<[usize; 2]> {
    let mut written = [0; 2];
    for (s, (split, prefix)) in [("train", "train"), ("test", "t10k")]
        .into_iter()
        .enumerate()
    {
        let images_path = from.join(format!("{prefix}-images-idx3-ubyte.gz"));
        let labels_path = from.join(format!("{prefix}-labels-idx1-ubyte.gz"));
        let (dims, pixels) = read_idx(&images_path, 0x0803)?;
        let (_, labels) = read_idx(&labels_path, 0x0801)?;
        let (n, rows, cols) = match dims.as_slice() {
            [n, r, c] => (*n, *r, *c),
            _ => return Err(malformed(&images_path, "expected 3 dimensions")),
        };
        if labels.len() != n {
            return Err(malformed(
                &labels_path,
                &format!("{} labels for {n} images", labels.len()),
            ));
        }
        let mut taken = [0usize; CLASSES.len()];
        for (i, &label) in labels.iter().enumerate() {
            let class = label as usize;
            let Some(name) = CLASSES.get(class) else {
                return Err(malformed(
                    &labels_path,
                    &format!("label {label} at item {i}"),
                ));
            };
            if taken[class] >= per_class[s] {
                continue;
            }
            taken[class] += 1;
            let dir = out.join(split).join(name);
            let file = dir.join(format!("{i:05}.png"));
            if !file.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| Error::Io {
                    path: dir.clone(),
                    source: e,
                })?;
                // white-on-black product silhouettes, shown as dark-on-white like a catalog
                let inverted: Vec<u8> = pixels[i * rows * cols..(i + 1) * rows * cols]
                    .iter()
                    .map(|p| 255 - p)
                    .collect();
                let gray = image::GrayImage::from_raw(cols as u32, rows as u32, inverted)
                    .expect("rows x cols bytes");
                let rgb = image::DynamicImage::ImageLuma8(gray).to_rgb8();
                unisight_core::atomic::atomic_write(&file, |w| {
                    let mut bytes = std::io::Cursor::new(Vec::new());
                    rgb.write_to(&mut bytes, image::ImageFormat::Png)
                        .map_err(std::io::Error::other)?;
                    w.write_all(bytes.get_ref())
                })
                .map_err(|e| Error::Io {
                    path: file.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            }
            written[s] += 1;
        }
    }
    Ok(written)
}

fn malformed(path: &Path, what: &str) -> Error {
    Error::Manifest {
        path: path.to_path_buf(),
        line: 0,
        what: what.to_string(),
    }
}

/// Reads a gzipped IDX file with the given magic: (dimensions, bytes).
fn read_idx(path: &PathBuf, magic: u32) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
    let word = |at: usize| -> Option<u32> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    if word(0) != Some(magic) {
        return Err(malformed(
            path,
            &format!("not an IDX file with magic {magic:#06x}"),
        ));
    }
    let n_dims = (magic & 0xff) as usize;
    let dims: Vec<usize> = (0..n_dims)
        .map(|d| word(4 + 4 * d).map(|v| v as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed(path, "truncated header"))?;
    let start = 4 + 4 * n_dims;
    let len: usize = dims.iter().product();
    let data = bytes
        .get(start..start + len)
        .ok_or_else(|| {
            malformed(
                path,
                &format!(
                    "truncated: {} data bytes, expected {len}",
                    bytes.len().saturating_sub(start)
                ),
            )
        })?
        .to_vec();
    Ok((dims, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(path: &Path, bytes: &[u8]) {
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    }

    fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn imports_idx_files_into_class_folders_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // 3 images of 2x2: labels 0, 0, 9
        let pixels: Vec<u8> = (0..12).collect();
        for prefix in ["train", "t10k"] {
            gz(
                &d.join(format!("{prefix}-images-idx3-ubyte.gz")),
                &idx(0x0803, &[3, 2, 2], &pixels),
            );
            gz(
                &d.join(format!("{prefix}-labels-idx1-ubyte.gz")),
                &idx(0x0801, &[3], &[0, 0, 9]),
            );
        }
        let out = d.join("out");
        assert_eq!(import(d, &out, [1, 5]).unwrap(), [2, 3]);
        assert!(out.join("train/t-shirt-top/00000.png").exists());
        assert!(!out.join("train/t-shirt-top/00001.png").exists());
        let img = image::open(out.join("test/ankle-boot/00002.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(img.dimensions(), (2, 2));
        assert_eq!(img.get_pixel(0, 0).0, [255 - 8; 3]);
        // truncated data is named
        gz(
            &d.join("t10k-images-idx3-ubyte.gz"),
            &idx(0x0803, &[3, 2, 2], &pixels[..5]),
        );
        let err = import(d, &d.join("out2"), [1, 1]).unwrap_err().to_string();
        assert!(
            err.contains("t10k-images") && err.contains("truncated"),
            "{err}"
        );
    }
}
