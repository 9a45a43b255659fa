//! Tombstone files: the deleted rows of one segment as of one commit (`<segment>.<generation>.del`).
//!
//! Layout: magic `USGTDEL\0`, u32 version, u32 count, `count` u32 rows (ascending), u32 CRC32C of
//! everything before it. Each file is cumulative, so a manifest names at most one per segment.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"USGTDEL\0";
const VERSION: u32 = 1;

/// Writes the sorted deleted `rows` of a segment to a new file and fsyncs it.
pub fn write(path: &Path, rows: &[u32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(20 + rows.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    for r in rows {
        bytes.extend_from_slice(&r.to_le_bytes());
    }
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Reads and verifies a tombstone file; every row must be below `segment_rows`.
pub fn read(path: &Path, segment_rows: usize) -> Result<Vec<u32>> {
    let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if b.len() < 20 {
        return Err(Error::Truncated {
            path: path.into(),
            expected: 20,
            actual: b.len() as u64,
        });
    }
    if &b[0..8] != MAGIC {
        return Err(Error::corrupt(path, "not a tombstone file (bad magic)"));
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.into(),
            found: version,
            oldest: VERSION,
            newest: VERSION,
        });
    }
    let count = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")) as u64;
    let expected = 20 + count * 4;
    if b.len() as u64 != expected {
        return Err(Error::Truncated {
            path: path.into(),
            expected,
            actual: b.len() as u64,
        });
    }
    let body = &b[..b.len() - 4];
    let stored = u32::from_le_bytes(b[b.len() - 4..].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(Error::ChecksumMismatch {
            path: path.into(),
            stored,
            computed,
        });
    }
    let rows: Vec<u32> = body[16..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect();
    if rows.windows(2).any(|w| w[0] >= w[1])
        || rows.last().is_some_and(|&r| r as usize >= segment_rows)
    {
        return Err(Error::corrupt(
            path,
            "deleted rows unsorted or out of range",
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.del");
        write(&p, &[1, 5, 9]).unwrap();
        assert_eq!(read(&p, 10).unwrap(), vec![1, 5, 9]);
        assert!(read(&p, 9).is_err());
        let b = std::fs::read(&p).unwrap();
        for cut in 0..b.len() {
            std::fs::write(&p, &b[..cut]).unwrap();
            assert!(read(&p, 10).is_err());
        }
    }
}
