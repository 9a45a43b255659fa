//! Writing a segment file: rows streamed once, checksummed as they go, fsynced.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;

use super::{
    FloatKind, Layout, FLAG_F16, FLAG_FLOATS, FLAG_NO_STRINGS, FOOTER_LEN, FOOTER_MAGIC,
    HEADER_LEN, SEGMENT_MAGIC,
};
use crate::{Error, Result};

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
