//! Re-scoring Hamming candidates: by float cosine against stored vectors, or asymmetrically, a
//! float query against the stored bits alone (no float storage needed).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Stored float vectors of one segment, row-major.
#[derive(Debug, Clone, Copy)]
pub enum FloatRows<'a> {
    /// 4 bytes per value.
    F32(&'a [f32]),
    /// 2 bytes per value: half the storage, cosine error ~1e-3.
    F16(&'a [f16]),
}

impl FloatRows<'_> {
    /// Cosine similarity of `query` with row `row` (vectors of length `query.len()`).
    pub fn cosine(&self, query: &[f32], row: usize) -> f32 {
        let dim = query.len();
        let (dot, norm) = match self {
            FloatRows::F32(v) => dot_norm(query, &v[row * dim..(row + 1) * dim]),
            FloatRows::F16(v) => {
                // converted a chunk at a time (vector instructions), not value by value
                let mut buf = [0f32; LANES * 8];
                let mut sums = (0.0, 0.0);
                for (q, r) in query
                    .chunks(buf.len())
                    .zip(v[row * dim..(row + 1) * dim].chunks(buf.len()))
                {
                    let wide = &mut buf[..r.len()];
                    r.convert_to_f32_slice(wide);
                    let (d, n) = dot_norm(q, wide);
                    sums = (sums.0 + d, sums.1 + n);
                }
                sums
            }
        };
        let qn = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 || qn == 0.0 {
            0.0
        } else {
            dot / (norm.sqrt() * qn)
        }
    }
}

/// Independent partial sums, so the additions pipeline (and vectorise) instead of waiting on
/// one another.
const LANES: usize = 8;

fn dot_norm(query: &[f32], row: &[f32]) -> (f32, f32) {
    let mut dot = [0f32; LANES];
    let mut norm = [0f32; LANES];
    let (q_chunks, r_chunks) = (query.chunks_exact(LANES), row.chunks_exact(LANES));
    let (q_rest, r_rest) = (q_chunks.remainder(), r_chunks.remainder());
    for (q, r) in q_chunks.zip(r_chunks) {
        for i in 0..LANES {
            dot[i] += q[i] * r[i];
            norm[i] += r[i] * r[i];
        }
    }
    let mut d: f32 = dot.iter().sum();
    let mut n: f32 = norm.iter().sum();
    for (q, r) in q_rest.iter().zip(r_rest) {
        d += q * r;
        n += r * r;
    }
    (d, n)
}

/// A float query prepared for scoring against packed sign bits.
///
/// The score is the inner product of the query with the ±1 vector of the code:
/// `sum_i q_i * s_i`. It is computed with one 256-entry table per code byte, so scoring an item
/// costs D/8 table lookups.
#[derive(Debug, Clone)]
pub struct AsymmetricQuery {
    tables: Vec<[f32; 256]>,
}

impl AsymmetricQuery {
    /// Prepares `query` (length D; codes are `numpy.packbits` order).
    pub fn new(query: &[f32]) -> Self {
        let tables = query
            .chunks(8)
            .map(|dims| {
                let mut table = [0f32; 256];
                for (byte, slot) in table.iter_mut().enumerate() {
                    *slot = dims
                        .iter()
                        .enumerate()
                        .map(|(i, &q)| if byte & (0x80 >> i) != 0 { q } else { -q })
                        .sum();
                }
                table
            })
            .collect();
        AsymmetricQuery { tables }
    }

    /// Inner product of the query with the ±1 vector of `code` (packed bytes).
    pub fn score(&self, code: &[u8]) -> f32 {
        self.tables
            .iter()
            .zip(code)
            .map(|(table, &byte)| table[byte as usize])
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpack(code: &[u8], dim: usize) -> Vec<f32> {
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

    #[test]
    fn asymmetric_score_is_inner_product_with_signs() {
        let query: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
        let code = [0b1010_0001u8, 0xff, 0x00];
        let expected: f32 = query
            .iter()
            .zip(unpack(&code, 24))
            .map(|(a, b)| a * b)
            .sum();
        let got = AsymmetricQuery::new(&query).score(&code);
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }

    #[test]
    fn cosine_of_f16_rows_is_close_to_f32() {
        let rows: Vec<f32> = vec![1.0, 0.0, 0.0, 0.6, 0.8, 0.0];
        let half: Vec<f16> = rows.iter().map(|&x| f16::from_f32(x)).collect();
        let q = [0.6, 0.8, 0.0];
        let a = FloatRows::F32(&rows).cosine(&q, 1);
        let b = FloatRows::F16(&half).cosine(&q, 1);
        assert!((a - 1.0).abs() < 1e-6);
        assert!((a - b).abs() < 1e-3);
        assert!((FloatRows::F32(&rows).cosine(&q, 0) - 0.6).abs() < 1e-6);
    }

    #[test]
    fn cosine_matches_the_plain_formula_at_every_length() {
        // lengths below, at and past the lane and chunk sizes, rows after the first
        for dim in [1, 7, 8, 9, 63, 64, 65, 130, 256] {
            let value = |i: usize| ((i * 37 % 23) as f32 - 11.0) / 7.0;
            let q: Vec<f32> = (0..dim).map(|i| value(i + 5)).collect();
            let rows: Vec<f32> = (0..3 * dim).map(value).collect();
            let half: Vec<f16> = rows.iter().map(|&x| f16::from_f32(x)).collect();
            for row in 0..3 {
                let r = &rows[row * dim..(row + 1) * dim];
                let dot: f64 = q.iter().zip(r).map(|(a, b)| f64::from(a * b)).sum();
                let qn: f64 = q.iter().map(|a| f64::from(a * a)).sum::<f64>().sqrt();
                let rn: f64 = r.iter().map(|b| f64::from(b * b)).sum::<f64>().sqrt();
                let want = if qn * rn == 0.0 { 0.0 } else { dot / (qn * rn) };
                let got = f64::from(FloatRows::F32(&rows).cosine(&q, row));
                assert!(
                    (got - want).abs() < 1e-5,
                    "dim {dim} row {row}: {got} vs {want}"
                );
                let got = f64::from(FloatRows::F16(&half).cosine(&q, row));
                assert!(
                    (got - want).abs() < 2e-3,
                    "f16 dim {dim} row {row}: {got} vs {want}"
                );
            }
        }
    }
}
