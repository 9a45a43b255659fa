//! Segment files: a write-once, checksummed block of items (codes, ids, optional floats, keys and
//! paths). The byte layout is specified in `FORMAT.md`.

mod read;
mod write;

pub use read::Segment;
pub use write::{write_segment, ItemRow};

/// First 8 bytes of a segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"USGTSEG\0";
/// Last 8 bytes of a segment file.
pub const FOOTER_MAGIC: &[u8; 8] = b"USGTEND\0";
/// Newest segment format version this build writes: 2 for segments without keys and paths;
/// segments with them are still written as version 1, byte for byte as before.
pub const FORMAT_VERSION: u32 = 2;
/// Oldest segment format version this build reads.
pub const OLDEST_SUPPORTED_VERSION: u32 = 1;

const HEADER_LEN: usize = 64;
const FOOTER_LEN: usize = 24;
const MAX_BITS: u32 = 1 << 16;
const MAX_FLOAT_DIM: u32 = 1 << 16;

const FLAG_FLOATS: u32 = 1;
const FLAG_F16: u32 = 2;
/// Version 2: no string table; an item's key is its id in decimal, its path empty.
const FLAG_NO_STRINGS: u32 = 4;

/// How float vectors are stored for re-ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FloatKind {
    /// 4 bytes per value.
    F32,
    /// 2 bytes per value.
    F16,
}

/// The column layout shared by all segments of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Code width in bits (a multiple of 64).
    pub bits: usize,
    /// Float vector length and storage, if floats are kept.
    pub floats: Option<(usize, FloatKind)>,
    /// Whether items keep their own string key and path. Without them an item costs its code
    /// and id (plus floats) and its key reads as its id in decimal.
    pub keys: bool,
}

impl Layout {
    /// Bytes of one code.
    pub fn code_bytes(&self) -> usize {
        self.bits / 8
    }

    /// u64 words of one code.
    pub fn code_words(&self) -> usize {
        self.bits / 64
    }

    fn float_bytes(&self) -> usize {
        match self.floats {
            None => 0,
            Some((dim, FloatKind::F32)) => dim * 4,
            Some((dim, FloatKind::F16)) => dim * 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn sample(dir: &Path, floats: Option<(usize, FloatKind)>) -> PathBuf {
        sample_with_ids(dir, floats, [10, 11, 12, 13, 14])
    }

    fn sample_with_ids(dir: &Path, floats: Option<(usize, FloatKind)>, ids: [u64; 5]) -> PathBuf {
        let path = dir.join("s.usg");
        let layout = Layout {
            bits: 128,
            floats,
            keys: true,
        };
        let codes: Vec<[u8; 16]> = (0..5u8).map(|i| [i; 16]).collect();
        let vecs: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32; 3]).collect();
        let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
        let rows: Vec<ItemRow> = (0..5)
            .map(|i| ItemRow {
                id: ids[i],
                key: &keys[i],
                path: "img/é.jpg",
                code: &codes[i],
                floats: Some(&vecs[i]),
            })
            .collect();
        write_segment(&path, layout, rows.into_iter()).unwrap();
        path
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for floats in [None, Some((3, FloatKind::F32)), Some((3, FloatKind::F16))] {
            let path = sample(dir.path(), floats);
            let s = Segment::open(&path).unwrap();
            assert_eq!(s.rows(), 5);
            assert_eq!(s.ids(), &[10, 11, 12, 13, 14]);
            assert_eq!(s.code_bytes_of(3), &[3u8; 16]);
            assert_eq!(s.codes().len(), 10);
            assert_eq!(s.key(4).unwrap(), "k4");
            assert_eq!(s.item_path(4).unwrap(), "img/é.jpg");
            assert_eq!(s.row_of(12), Some(2));
            assert_eq!(s.float_row(2), floats.map(|_| vec![2.0; 3]));
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn rows_are_found_by_id_with_and_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        for ids in [
            [10, 11, 12, 13, 14],
            [3, 5, 6, 20, 21],
            [0, 1, 2, 3, u64::MAX],
        ] {
            let path = sample_with_ids(dir.path(), None, ids);
            let s = Segment::open(&path).unwrap();
            for (row, id) in ids.iter().enumerate() {
                assert_eq!(s.row_of(*id), Some(row), "{ids:?} {id}");
            }
            for absent in [0, 2, 4, 7, 15, 19, 22, u64::MAX - 1] {
                if !ids.contains(&absent) {
                    assert_eq!(s.row_of(absent), None, "{ids:?} {absent}");
                }
            }
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), Some((3, FloatKind::F16)));
        let bytes = std::fs::read(&path).unwrap();
        let bad = dir.path().join("bad.usg");
        for cut in 0..bytes.len() {
            std::fs::write(&bad, &bytes[..cut]).unwrap();
            assert!(Segment::open(&bad).is_err(), "truncated at {cut} opened");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            std::fs::write(&bad, &b).unwrap();
            assert!(Segment::open(&bad).is_err(), "flip at {at} opened");
        }
        // bytes appended are named as such, not as a truncation
        for extra in [1usize, 7, 100] {
            let mut b = bytes.clone();
            b.extend(std::iter::repeat_n(0xAB, extra));
            std::fs::write(&bad, &b).unwrap();
            let e = Segment::open(&bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{extra} bytes after the footer")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_keyless_segment_is_codes_and_ids_only_and_keys_read_as_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.usg");
        let layout = Layout {
            bits: 256,
            floats: None,
            keys: false,
        };
        let codes: Vec<[u8; 32]> = (0..7u8).map(|i| [i; 32]).collect();
        let rows = (0..7).map(|i| ItemRow {
            id: 100 + i as u64,
            key: "",
            path: "",
            code: &codes[i],
            floats: None,
        });
        write_segment(&path, layout, rows).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 64 + 7 * (32 + 8) + 24);
        assert_eq!(&bytes[8..12], &2u32.to_le_bytes());
        let s = Segment::open(&path).unwrap();
        assert_eq!(s.layout(), layout);
        assert_eq!(s.key(3).unwrap(), "103");
        assert_eq!(s.item_path(3).unwrap(), "");
        assert_eq!(s.code_bytes_of(6), &[6u8; 32]);
        // the no-strings flag is refused in a version-1 file (checksum made valid)
        let mut b = bytes.clone();
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let body = b.len() - 24;
        let crc = crc32c::crc32c(&b[..body]);
        b[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let msg = Segment::open(&path).unwrap_err().to_string();
        assert!(msg.contains("unknown flags"), "{msg}");
    }

    #[test]
    fn future_version_names_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path(), None);
        let mut b = std::fs::read(&path).unwrap();
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let msg = Segment::open(&path).unwrap_err().to_string();
        assert!(msg.contains("version 7") && msg.contains("1..=2"), "{msg}");
    }
}
