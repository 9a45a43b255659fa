//! Segment files: a write-once, checksummed block of items (codes, ids, optional floats, keys and
//! paths). The byte layout is specified in `FORMAT.md`.

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use half::f16;
use memmap2::Mmap;

use crate::mmap::map_file;
use crate::rerank::FloatRows;
use crate::{Error, Result};

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

/// One item as written into a segment.
#[derive(Debug, Clone, Copy)]
pub struct ItemRow<'a> {
    /// Internal id.
    pub id: u64,
    /// External key (unique string id).
    pub key: &'a str,
    /// Where the image lives (informational).
    pub path: &'a str,
    /// Packed code, `bits / 8` bytes.
    pub code: &'a [u8],
    /// Float vector, if the layout keeps floats.
    pub floats: Option<&'a [f32]>,
}

/// Writes a new segment file at `path` (which must not exist) and fsyncs it.
///
/// The caller publishes it by committing a manifest that lists it.
pub fn write_segment<'a>(
    path: &Path,
    layout: Layout,
    rows: impl ExactSizeIterator<Item = ItemRow<'a>> + Clone,
) -> Result<()> {
    let n = rows.len();
    let code_bytes = layout.code_bytes();
    let ids_offset = HEADER_LEN + n * code_bytes;
    let floats_offset = ids_offset + n * 8;
    let floats_len = pad8(n * layout.float_bytes());
    let strings_offset = floats_offset + floats_len;
    let mut string_bytes = 0usize;
    if layout.keys {
        for row in rows.clone() {
            string_bytes += row.key.len() + row.path.len();
        }
    }
    let strings_len = if layout.keys {
        (2 * n + 1) * 8 + pad8(string_bytes)
    } else {
        0
    };

    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    let io = |e| Error::io(path, e);

    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(SEGMENT_MAGIC);
    let version: u32 = if layout.keys { 1 } else { 2 };
    header[8..12].copy_from_slice(&version.to_le_bytes());
    let mut flags = match layout.floats {
        None => 0,
        Some((_, FloatKind::F32)) => FLAG_FLOATS,
        Some((_, FloatKind::F16)) => FLAG_FLOATS | FLAG_F16,
    };
    if !layout.keys {
        flags |= FLAG_NO_STRINGS;
    }
    header[12..16].copy_from_slice(&flags.to_le_bytes());
    header[16..20].copy_from_slice(&(layout.bits as u32).to_le_bytes());
    let float_dim = layout.floats.map_or(0, |(d, _)| d);
    header[20..24].copy_from_slice(&(float_dim as u32).to_le_bytes());
    header[24..32].copy_from_slice(&(n as u64).to_le_bytes());
    header[32..40].copy_from_slice(&(ids_offset as u64).to_le_bytes());
    header[40..48].copy_from_slice(&(floats_offset as u64).to_le_bytes());
    header[48..56].copy_from_slice(&(strings_offset as u64).to_le_bytes());
    header[56..64].copy_from_slice(&(strings_len as u64).to_le_bytes());
    out.write_all(&header).map_err(io)?;

    for row in rows.clone() {
        if row.code.len() != code_bytes {
            return Err(Error::InvalidInput(format!(
                "item {}: code has {} bytes, index expects {}",
                row.key,
                row.code.len(),
                code_bytes
            )));
        }
        out.write_all(row.code).map_err(io)?;
    }
    for row in rows.clone() {
        out.write_all(&row.id.to_le_bytes()).map_err(io)?;
    }
    if let Some((dim, kind)) = layout.floats {
        for row in rows.clone() {
            let floats = row.floats.ok_or_else(|| {
                Error::InvalidInput(format!(
                    "item {}: index keeps floats but none given",
                    row.key
                ))
            })?;
            if floats.len() != dim {
                return Err(Error::InvalidInput(format!(
                    "item {}: float vector has {} values, index expects {dim}",
                    row.key,
                    floats.len()
                )));
            }
            for &v in floats {
                match kind {
                    FloatKind::F32 => out.write_all(&v.to_le_bytes()),
                    FloatKind::F16 => out.write_all(&f16::from_f32(v).to_le_bytes()),
                }
                .map_err(io)?;
            }
        }
        out.write_all(&vec![0u8; floats_len - n * layout.float_bytes()])
            .map_err(io)?;
    }
    if layout.keys {
        let mut offset = 0u64;
        out.write_all(&offset.to_le_bytes()).map_err(io)?;
        for row in rows.clone() {
            for s in [row.key, row.path] {
                offset += s.len() as u64;
                out.write_all(&offset.to_le_bytes()).map_err(io)?;
            }
        }
        for row in rows {
            out.write_all(row.key.as_bytes()).map_err(io)?;
            out.write_all(row.path.as_bytes()).map_err(io)?;
        }
        out.write_all(&vec![0u8; pad8(string_bytes) - string_bytes])
            .map_err(io)?;
    }

    let body_len = out.written;
    let crc = out.crc;
    let mut writer = out.inner;
    let mut footer = [0u8; FOOTER_LEN];
    footer[0..4].copy_from_slice(&crc.to_le_bytes());
    footer[8..16].copy_from_slice(&body_len.to_le_bytes());
    footer[16..24].copy_from_slice(FOOTER_MAGIC);
    writer.write_all(&footer).map_err(io)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

struct Checksummed<W> {
    inner: W,
    crc: u32,
    written: u64,
}

impl<W: Write> Checksummed<W> {
    fn new(inner: W) -> Self {
        Checksummed {
            inner,
            crc: 0,
            written: 0,
        }
    }
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A segment opened by mmap, checksum verified.
#[derive(Debug)]
pub struct Segment {
    path: PathBuf,
    map: Mmap,
    layout: Layout,
    rows: usize,
    ids_offset: usize,
    floats_offset: usize,
    strings_offset: usize,
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Segment {
    /// Opens and fully verifies a segment: magic, version, lengths, checksum, id order and the
    /// string table. Never panics on bad bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::ChecksumMismatch`], [`Error::UnsupportedVersion`] or
    /// [`Error::Corrupt`] naming the file.
    pub fn open(path: &Path) -> Result<Segment> {
        let map = map_file(path)?;
        Self::from_map(path, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<Segment> {
        let b: &[u8] = &map;
        let len = b.len() as u64;
        let min = (HEADER_LEN + FOOTER_LEN) as u64;
        if len < min {
            return Err(Error::Truncated {
                path: path.into(),
                expected: min,
                actual: len,
            });
        }
        if &b[0..8] != SEGMENT_MAGIC {
            return Err(Error::corrupt(path, "not a unisight segment (bad magic)"));
        }
        let version = read_u32(b, 8);
        if !(OLDEST_SUPPORTED_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                path: path.into(),
                found: version,
                oldest: OLDEST_SUPPORTED_VERSION,
                newest: FORMAT_VERSION,
            });
        }
        let footer = &b[b.len() - FOOTER_LEN..];
        if &footer[16..24] != FOOTER_MAGIC {
            return Err(Error::Truncated {
                path: path.into(),
                expected: len + 1,
                actual: len,
            });
        }
        if read_u32(footer, 4) != 0 {
            return Err(Error::corrupt(path, "footer reserved bytes are not zero"));
        }
        let body_len = read_u64(footer, 8);
        if body_len != len - FOOTER_LEN as u64 {
            return Err(Error::Truncated {
                path: path.into(),
                expected: body_len.saturating_add(FOOTER_LEN as u64),
                actual: len,
            });
        }
        let body = &b[..b.len() - FOOTER_LEN];
        let stored = read_u32(footer, 0);
        let computed = crc32c::crc32c(body);
        if stored != computed {
            return Err(Error::ChecksumMismatch {
                path: path.into(),
                stored,
                computed,
            });
        }
        let flags = read_u32(b, 12);
        let bits = read_u32(b, 16);
        let float_dim = read_u32(b, 20);
        let rows = read_u64(b, 24);
        let ids_offset = read_u64(b, 32);
        let floats_offset = read_u64(b, 40);
        let strings_offset = read_u64(b, 48);
        let strings_len = read_u64(b, 56);
        let bad = |what: String| Err(Error::corrupt(path, what));
        if bits == 0 || !bits.is_multiple_of(64) || bits > MAX_BITS {
            return bad(format!(
                "code width {bits} bits is not a multiple of 64 up to {MAX_BITS}"
            ));
        }
        let known = if version >= 2 {
            FLAG_FLOATS | FLAG_F16 | FLAG_NO_STRINGS
        } else {
            FLAG_FLOATS | FLAG_F16
        };
        if flags & !known != 0 {
            return bad(format!("unknown flags {flags:#x} for version {version}"));
        }
        let keys = flags & FLAG_NO_STRINGS == 0;
        let floats = if flags & FLAG_FLOATS != 0 {
            if float_dim == 0 || float_dim > MAX_FLOAT_DIM {
                return bad(format!("float dimension {float_dim} out of range"));
            }
            let kind = if flags & FLAG_F16 != 0 {
                FloatKind::F16
            } else {
                FloatKind::F32
            };
            Some((float_dim as usize, kind))
        } else {
            None
        };
        let layout = Layout {
            bits: bits as usize,
            floats,
            keys,
        };
        // every size below is checked against the body length before any slicing
        let body_len = body.len() as u64;
        if rows > body_len / 8 {
            return bad(format!("row count {rows} larger than the file allows"));
        }
        let expect_ids = HEADER_LEN as u64 + rows * layout.code_bytes() as u64;
        let expect_floats = expect_ids + rows * 8;
        let expect_strings = expect_floats + (rows * layout.float_bytes() as u64).div_ceil(8) * 8;
        if ids_offset != expect_ids
            || floats_offset != expect_floats
            || strings_offset != expect_strings
            || strings_offset.checked_add(strings_len) != Some(body_len)
            || (keys && strings_len < (2 * rows + 1) * 8)
            || (!keys && strings_len != 0)
        {
            return bad("section offsets inconsistent with the row count".into());
        }
        let segment = Segment {
            path: path.into(),
            map,
            layout,
            rows: rows as usize,
            ids_offset: ids_offset as usize,
            floats_offset: floats_offset as usize,
            strings_offset: strings_offset as usize,
        };
        segment.check_ids_and_strings(strings_len as usize)?;
        Ok(segment)
    }

    fn check_ids_and_strings(&self, strings_len: usize) -> Result<()> {
        let ids = self.ids();
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::corrupt(
                &self.path,
                "ids are not strictly increasing",
            ));
        }
        if !self.layout.keys {
            return Ok(());
        }
        let offsets = self.string_offsets();
        let blob = (strings_len - offsets.len() * 8) as u64;
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[offsets.len() - 1] > blob
        {
            return Err(Error::corrupt(
                &self.path,
                "string table offsets out of order or range",
            ));
        }
        Ok(())
    }

    /// The file this segment was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Column layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of rows (including deleted ones).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// File size in bytes.
    pub fn file_bytes(&self) -> usize {
        self.map.len()
    }

    /// All codes as u64 words (`bits / 64` per row).
    pub fn codes(&self) -> &[u64] {
        let bytes = &self.map[HEADER_LEN..self.ids_offset];
        bytemuck::cast_slice(bytes)
    }

    /// Packed code bytes of one row.
    pub fn code_bytes_of(&self, row: usize) -> &[u8] {
        let cb = self.layout.code_bytes();
        &self.map[HEADER_LEN + row * cb..HEADER_LEN + (row + 1) * cb]
    }

    /// Ids, strictly increasing.
    pub fn ids(&self) -> &[u64] {
        bytemuck::cast_slice(&self.map[self.ids_offset..self.floats_offset])
    }

    /// Stored float vectors, if any.
    pub fn floats(&self) -> Option<FloatRows<'_>> {
        let (dim, kind) = self.layout.floats?;
        let start = self.floats_offset;
        Some(match kind {
            FloatKind::F32 => FloatRows::F32(bytemuck::cast_slice(
                &self.map[start..start + self.rows * dim * 4],
            )),
            FloatKind::F16 => FloatRows::F16(bytemuck::cast_slice(
                &self.map[start..start + self.rows * dim * 2],
            )),
        })
    }

    /// Float vector of one row as f32, if floats are stored.
    pub fn float_row(&self, row: usize) -> Option<Vec<f32>> {
        let (dim, _) = self.layout.floats?;
        Some(match self.floats()? {
            FloatRows::F32(v) => v[row * dim..(row + 1) * dim].to_vec(),
            FloatRows::F16(v) => v[row * dim..(row + 1) * dim]
                .iter()
                .map(|x| x.to_f32())
                .collect(),
        })
    }

    fn string_offsets(&self) -> &[u64] {
        let start = self.strings_offset;
        bytemuck::cast_slice(&self.map[start..start + (2 * self.rows + 1) * 8])
    }

    fn string(&self, index: usize) -> Result<&str> {
        let offsets = self.string_offsets();
        let blob = self.strings_offset + offsets.len() * 8;
        let (a, b) = (offsets[index] as usize, offsets[index + 1] as usize);
        std::str::from_utf8(&self.map[blob + a..blob + b])
            .map_err(|_| Error::corrupt(&self.path, format!("string {index} is not UTF-8")))
    }

    /// External key of a row.
    pub fn key(&self, row: usize) -> Result<Cow<'_, str>> {
        if self.layout.keys {
            self.string(2 * row).map(Cow::Borrowed)
        } else {
            Ok(Cow::Owned(self.ids()[row].to_string()))
        }
    }

    /// Image path of a row.
    pub fn item_path(&self, row: usize) -> Result<&str> {
        if self.layout.keys {
            self.string(2 * row + 1)
        } else {
            Ok("")
        }
    }

    /// Row of `id`. Ids are sorted and unique, and a segment written in one go holds
    /// consecutive ones, so the row `id - first id` is tried before a binary search: one memory
    /// access instead of twenty on a million rows, which re-ranking pays per candidate.
    pub fn row_of(&self, id: u64) -> Option<usize> {
        let ids = self.ids();
        let guess = id
            .checked_sub(*ids.first()?)
            .and_then(|d| usize::try_from(d).ok());
        if let Some(row) = guess.filter(|&row| ids.get(row) == Some(&id)) {
            return Some(row);
        }
        ids.binary_search(&id).ok()
    }
}

#[cfg(test)]
mod tests {
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
