//! Binary codes: one bit per embedding dimension, bit = (value > 0).
//!
//! Bits are packed most-significant-bit first within each byte, which is exactly
//! `numpy.packbits(x > 0, axis=1)`: dimension 0 is bit 7 of byte 0. Hamming distance does not
//! depend on the bit order, but interoperability with numpy and FAISS does.

/// Number of bytes of a code for `dim` dimensions (dimensions are padded with zero bits up to a
/// multiple of 8, as `numpy.packbits` does).
pub fn code_bytes(dim: usize) -> usize {
    dim.div_ceil(8)
}

/// Packs the sign bits (value > 0) of one vector.
pub fn pack_signs(values: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; code_bytes(values.len())];
    pack_signs_into(values, &mut out);
    out
}

/// Packs the sign bits of one vector into `out`, which must hold [`code_bytes`]`(values.len())`
/// bytes.
///
/// # Panics
/// If `out` has the wrong length (a caller bug, not bad input).
pub fn pack_signs_into(values: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), code_bytes(values.len()), "code buffer length");
    out.fill(0);
    for (i, &v) in values.iter().enumerate() {
        if v > 0.0 {
            out[i / 8] |= 0x80 >> (i % 8);
        }
    }
}

/// Unpacks a code into ±1 values (bit set -> +1), the form used for asymmetric scoring.
pub fn unpack_signs(code: &[u8], dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| {
            if code[i / 8] & (0x80 >> (i % 8)) != 0 {
                1.0
            } else {
                -1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packbits_order() {
        let mut v = vec![-1.0f32; 16];
        v[0] = 1.0;
        v[9] = 1.0;
        assert_eq!(pack_signs(&v), vec![0x80, 0x40]);
        // zero is not positive
        assert_eq!(pack_signs(&[0.0; 8]), vec![0]);
        // padding bits are zero, as numpy.packbits pads
        assert_eq!(pack_signs(&[1.0; 3]), vec![0b1110_0000]);
    }

    proptest! {
        #[test]
        fn unpack_inverts_pack(values in proptest::collection::vec(-1.0f32..1.0, 1..300)) {
            let code = pack_signs(&values);
            let back = unpack_signs(&code, values.len());
            for (v, b) in values.iter().zip(back) {
                prop_assert_eq!(*v > 0.0, b > 0.0);
            }
        }
    }
}
