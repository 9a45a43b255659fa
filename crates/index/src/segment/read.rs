//! Reading a segment file: mmap, full verification on open, column access by row.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{
    FloatKind, Layout, FLAG_F16, FLAG_FLOATS, FLAG_NO_STRINGS, FOOTER_LEN, FOOTER_MAGIC,
    FORMAT_VERSION, HEADER_LEN, MAX_BITS, MAX_FLOAT_DIM, OLDEST_SUPPORTED_VERSION, SEGMENT_MAGIC,
};
use crate::mmap::map_file;
use crate::rerank::FloatRows;
use crate::{Error, Result};

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
            // a footer a little before the end: bytes were appended, not cut off
            let tail = &b[b.len().saturating_sub(1 << 16)..];
            if let Some(at) = tail.windows(8).rposition(|w| w == FOOTER_MAGIC) {
                let extra = tail.len() - at - 8;
                return Err(Error::corrupt(
                    path,
                    format!("{extra} bytes after the footer: data was appended to the file"),
                ));
            }
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
