//! Hand-written AVX-512 kernels for 256- and 512-bit codes.
//!
//! The portable body, compiled for AVX-512, counts bits of one code per ymm register and then
//! reduces its four lanes horizontally, which costs more than the popcount itself. Here eight
//! codes are scored per step: four zmm loads (two codes each), `vpopcntq`, and the four
//! lane-sums of all eight codes reduced together by two unpacks, one add, two 128-bit lane
//! shuffles and one more add. One compare against the bound gives an 8-bit mask, which is
//! almost always zero once the top-k has filled, so the rare hits are handled off the fast path.
//!
//! 512-bit codes take one zmm register each; eight of them are reduced in three rounds.
//!
//! For 256-bit codes there is no four-query variant: the kernel is bound by arithmetic, not by
//! loads, so a chunk of codes held in L1 is scored one query after another (measured faster
//! than reloading per query inside one loop). For 512-bit codes, batches keep the portable
//! four-query body, measured faster than this kernel query after query.

use std::arch::x86_64::*;

/// Lanes of the reduced sums hold codes in this order; see [`sums8`].
const LANE_ORDER: [i64; 8] = [0, 2, 1, 3, 4, 6, 5, 7];

/// Distances of eight consecutive codes at `p` (32 words) to `q` (a 256-bit query in both
/// halves), as u64 lanes in [`LANE_ORDER`].
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn sums8(p: *const u64, q: __m512i) -> __m512i {
    // SAFETY: the caller guarantees 32 readable words at `p`.
    let (a, b, c, d) = unsafe {
        (
            _mm512_loadu_si512(p.cast()),
            _mm512_loadu_si512(p.add(8).cast()),
            _mm512_loadu_si512(p.add(16).cast()),
            _mm512_loadu_si512(p.add(24).cast()),
        )
    };
    let a = _mm512_popcnt_epi64(_mm512_xor_si512(a, q));
    let b = _mm512_popcnt_epi64(_mm512_xor_si512(b, q));
    let c = _mm512_popcnt_epi64(_mm512_xor_si512(c, q));
    let d = _mm512_popcnt_epi64(_mm512_xor_si512(d, q));
    // per 128-bit lane: [a0+a1, b0+b1], [a2+a3, b2+b3], ...
    let ab = _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    let cd = _mm512_add_epi64(_mm512_unpacklo_epi64(c, d), _mm512_unpackhi_epi64(c, d));
    // lanes 0 and 2 of each, then lanes 1 and 3: their sum completes every code's four words
    let even = _mm512_shuffle_i64x2::<0b10_00_10_00>(ab, cd);
    let odd = _mm512_shuffle_i64x2::<0b11_01_11_01>(ab, cd);
    _mm512_add_epi64(even, odd)
}

/// Sums of [`sums8`] put in row order.
#[inline]
#[target_feature(enable = "avx512f")]
fn in_row_order(sums: __m512i) -> __m512i {
    // SAFETY: `LANE_ORDER` holds eight i64.
    let order = unsafe { _mm512_loadu_epi64(LANE_ORDER.as_ptr()) };
    _mm512_permutexvar_epi64(order, sums)
}

/// The 256-bit query in both halves of a zmm register.
#[inline]
#[target_feature(enable = "avx512f")]
fn broadcast_query(query: &[u64]) -> __m512i {
    let q: &[u64; 4] = query.try_into().expect("a 256-bit query");
    // SAFETY: `q` holds four readable words.
    _mm512_broadcast_i64x4(unsafe { _mm256_loadu_si256(q.as_ptr().cast()) })
}

/// Distances of eight consecutive 512-bit codes at `p` (64 words) to `q`, as u64 lanes in row
/// order: eight popcounts reduced together in three rounds (pairs by unpacking, then 128-bit
/// lanes twice by shuffles).
#[inline]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
unsafe fn sums8_w8(p: *const u64, q: __m512i) -> __m512i {
    // SAFETY: the caller guarantees 64 readable words at `p`.
    let v: [__m512i; 8] = std::array::from_fn(|i| {
        let code = unsafe { _mm512_loadu_si512(p.add(8 * i).cast()) };
        _mm512_popcnt_epi64(_mm512_xor_si512(code, q))
    });
    let pair = |a: __m512i, b: __m512i| {
        _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
    };
    let halves = |a: __m512i, b: __m512i| {
        _mm512_add_epi64(
            _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
        )
    };
    let abcd = halves(pair(v[0], v[1]), pair(v[2], v[3]));
    let efgh = halves(pair(v[4], v[5]), pair(v[6], v[7]));
    halves(abcd, efgh)
}

/// `Kernel::candidates` for 256-bit codes: rows whose distance is at most `bound`, in row order.
///
/// # Safety
/// The CPU must support AVX-512F and VPOPCNTDQ.
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
pub(super) unsafe fn candidates_w4(
    query: &[u64],
    codes: &[u64],
    bound: u32,
    rows: &mut [u32],
    dists: &mut [u32],
) -> usize {
    let q = broadcast_query(query);
    let bound_v = _mm512_set1_epi64(i64::from(bound));
    let n = codes.len() / 4;
    let blocks = n / 8;
    let mut found = 0usize;
    for block in 0..blocks {
        // SAFETY: block < n / 8, so its 32 words are inside `codes`.
        let sums = unsafe { sums8(codes.as_ptr().add(block * 32), q) };
        if _mm512_cmple_epu64_mask(sums, bound_v) == 0 {
            continue;
        }
        let sums = in_row_order(sums);
        found += append_hits(
            sums,
            bound_v,
            block * 8,
            &mut rows[found..],
            &mut dists[found..],
        );
    }
    finish_tail::<4>(query, codes, bound, blocks * 8, found, rows, dists)
}

/// `Kernel::candidates` for 512-bit codes, as [`candidates_w4`].
///
/// # Safety
/// The CPU must support AVX-512F and VPOPCNTDQ.
#[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
pub(super) unsafe fn candidates_w8(
    query: &[u64],
    codes: &[u64],
    bound: u32,
    rows: &mut [u32],
    dists: &mut [u32],
) -> usize {
    let q: &[u64; 8] = query.try_into().expect("a 512-bit query");
    // SAFETY: `q` holds eight readable words.
    let q = unsafe { _mm512_loadu_si512(q.as_ptr().cast()) };
    let bound_v = _mm512_set1_epi64(i64::from(bound));
    let n = codes.len() / 8;
    let blocks = n / 8;
    let mut found = 0usize;
    for block in 0..blocks {
        // SAFETY: block < n / 8, so its 64 words are inside `codes`.
        let sums = unsafe { sums8_w8(codes.as_ptr().add(block * 64), q) };
        if _mm512_cmple_epu64_mask(sums, bound_v) == 0 {
            continue;
        }
        found += append_hits(
            sums,
            bound_v,
            block * 8,
            &mut rows[found..],
            &mut dists[found..],
        );
    }
    finish_tail::<8>(query, codes, bound, blocks * 8, found, rows, dists)
}

/// Appends the lanes of `sums` (row order, rows from `first`) that are within the bound;
/// returns how many.
#[inline]
#[target_feature(enable = "avx512f")]
fn append_hits(
    sums: __m512i,
    bound_v: __m512i,
    first: usize,
    rows: &mut [u32],
    dists: &mut [u32],
) -> usize {
    let mut mask = _mm512_cmple_epu64_mask(sums, bound_v);
    let mut lanes = [0u64; 8];
    // SAFETY: `lanes` has room for eight u64.
    unsafe { _mm512_storeu_epi64(lanes.as_mut_ptr().cast(), sums) };
    let mut found = 0;
    while mask != 0 {
        let lane = mask.trailing_zeros() as usize;
        rows[found] = (first + lane) as u32;
        dists[found] = lanes[lane] as u32;
        found += 1;
        mask &= mask - 1;
    }
    found
}

/// Scores the codes from row `tail` on with the portable body, after `found` earlier hits.
#[inline]
fn finish_tail<const W: usize>(
    query: &[u64],
    codes: &[u64],
    bound: u32,
    tail: usize,
    found: usize,
    rows: &mut [u32],
    dists: &mut [u32],
) -> usize {
    let more = super::candidates_body::<W>(
        query,
        &codes[tail * W..],
        bound,
        &mut rows[found..],
        &mut dists[found..],
    );
    for r in &mut rows[found..found + more] {
        *r += tail as u32;
    }
    found + more
}
