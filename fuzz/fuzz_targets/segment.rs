//! Any bytes as a segment file. An input whose first byte is odd is taken as a segment body
//! and given a valid footer (checksum, length, magic), so the fuzzer also reaches the checks
//! behind the CRC. An accepted segment has every accessor exercised on every row.
#![no_main]

mod scratch;

use libfuzzer_sys::fuzz_target;
use unisight_index::Segment;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Vec::with_capacity(data.len() + 24);
    match data.split_first() {
        Some((first, body)) if first % 2 == 1 => {
            bytes.extend_from_slice(body);
            bytes.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
            bytes.extend_from_slice(&[0; 4]);
            bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
            bytes.extend_from_slice(b"USGTEND\0");
        }
        _ => bytes.extend_from_slice(data),
    }
    let path = scratch::write("segment.usg", &bytes);
    if let Ok(segment) = Segment::open(&path) {
        let mut sum = 0u64;
        for row in 0..segment.rows() {
            sum = sum.wrapping_add(segment.ids()[row]);
            sum = sum.wrapping_add(segment.code_bytes_of(row).len() as u64);
            sum = sum.wrapping_add(segment.key(row).map_or(0, |k| k.len() as u64));
            sum = sum.wrapping_add(segment.item_path(row).map_or(0, |p| p.len() as u64));
            sum = sum.wrapping_add(segment.float_row(row).map_or(0, |f| f.len() as u64));
            let id = segment.ids()[row];
            assert_eq!(segment.row_of(id), Some(row));
        }
        assert_eq!(
            segment.codes().len() * 8,
            segment.rows() * segment.layout().code_bytes()
        );
        std::hint::black_box(sum);
    }
});
