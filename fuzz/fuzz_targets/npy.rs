//! Any bytes as an `.npy` array file (`embeddings.npy`, `codes.npy`, embedding chunks). An input
//! whose first byte is odd gets a valid C-order header: dtype `<f4` or `|u1` by the second
//! byte's low bit, shape (rows, columns) from the next two bytes, the rest as data, so the
//! fuzzer also reaches the checks after the header. Reading must refuse or give exactly
//! rows x columns values.
#![no_main]

mod scratch;

use libfuzzer_sys::fuzz_target;
use unisight_core::artifacts::read_npy;

/// A version-1 `.npy` header for a 2-d C-order array, padded to 64 bytes as numpy does.
fn header(descr: &str, rows: u8, cols: u8) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let bytes = match data {
        [first, kind, rows, cols, body @ ..] if first % 2 == 1 => {
            let descr = if kind % 2 == 0 { "<f4" } else { "|u1" };
            let mut bytes = header(descr, *rows, *cols);
            bytes.extend_from_slice(body);
            bytes
        }
        _ => data.to_vec(),
    };
    let path = scratch::write("array.npy", &bytes);
    if let Ok((rows, cols, values)) = read_npy::<f32>(&path) {
        assert_eq!(rows.checked_mul(cols), Some(values.len()));
    }
    if let Ok((rows, cols, values)) = read_npy::<u8>(&path) {
        assert_eq!(rows.checked_mul(cols), Some(values.len()));
    }
});
