//! Hamming distance kernels with runtime CPU dispatch.
//!
//! One portable body, [`distances_body`], is compiled several times with different target
//! features (POPCNT; AVX2; AVX-512 VPOPCNTDQ; NEON on ARM). LLVM turns the `count_ones` loop into
//! `popcnt`, a `vpshufb` nibble-lookup popcount, `vpopcntq` or `cnt` respectively. The kernel is
//! chosen once per process by [`Kernel::detect`], and can be forced for testing and benchmarks.
//!
//! Widths of 256, 512, 1024 and 2048 bits have fully unrolled instances (const `W` = words of
//! 64 bits); other multiples of 64 use the dynamic-width body.

#[cfg(target_arch = "x86_64")]
mod avx512;

/// The instruction-set level a kernel was compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, no special instructions (software popcount).
    Scalar,
    /// x86-64 POPCNT.
    Popcnt,
    /// x86-64 AVX2 (vectorised popcount by nibble lookup).
    Avx2,
    /// x86-64 AVX-512F + VPOPCNTDQ.
    Avx512,
    /// AArch64 NEON `cnt`.
    Neon,
}

impl Kernel {
    /// The best kernel this CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                return Kernel::Avx2;
            }
            if std::arch::is_x86_feature_detected!("popcnt") {
                return Kernel::Popcnt;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Kernel::Neon;
            }
        }
        Kernel::Scalar
    }

    /// Every kernel this CPU can run, for tests and benchmarks.
    pub fn available() -> Vec<Kernel> {
        let mut out = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("popcnt") {
                out.push(Kernel::Popcnt);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("popcnt")
            {
                out.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            {
                out.push(Kernel::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                out.push(Kernel::Neon);
            }
        }
        out
    }

    /// Parses a kernel name as printed by `Debug` in lower case (`scalar`, `popcnt`, `avx2`,
    /// `avx512`, `neon`); `None` when unknown or not supported by this CPU.
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::available()
            .into_iter()
            .find(|k| format!("{k:?}").eq_ignore_ascii_case(name))
    }

    /// Hamming distances from `query` to every code in `codes` (each `query.len()` words), written
    /// to `out` (one entry per code).
    ///
    /// # Panics
    /// If `codes.len()` is not `out.len() * query.len()` (a caller bug).
    pub fn distances(self, query: &[u64], codes: &[u64], out: &mut [u32]) {
        let words = query.len();
        assert_eq!(codes.len(), out.len() * words, "codes and output lengths");
        match words {
            4 => self.dispatch::<4>(query, codes, out),
            8 => self.dispatch::<8>(query, codes, out),
            16 => self.dispatch::<16>(query, codes, out),
            32 => self.dispatch::<32>(query, codes, out),
            _ => self.dispatch::<0>(query, codes, out),
        }
    }

    /// Rows of `codes` whose distance to `query` is at most `bound`: their row numbers go to
    /// `rows` and distances to `dists` (both at least as long as the number of codes); returns
    /// how many. Fusing the threshold into the kernel saves a store and a reload per code, and
    /// the branch-free append keeps the loop free of mispredictions.
    ///
    /// # Panics
    /// If the output buffers are shorter than the number of codes (a caller bug).
    pub fn candidates(
        self,
        query: &[u64],
        codes: &[u64],
        bound: u32,
        rows: &mut [u32],
        dists: &mut [u32],
    ) -> usize {
        let words = query.len();
        let n = codes.len() / words;
        assert!(
            rows.len() >= n && dists.len() >= n,
            "candidate buffers too short"
        );
        match words {
            4 => self.dispatch_candidates::<4>(query, codes, bound, rows, dists),
            8 => self.dispatch_candidates::<8>(query, codes, bound, rows, dists),
            16 => self.dispatch_candidates::<16>(query, codes, bound, rows, dists),
            32 => self.dispatch_candidates::<32>(query, codes, bound, rows, dists),
            _ => self.dispatch_candidates::<0>(query, codes, bound, rows, dists),
        }
    }

    #[inline]
    fn dispatch_candidates<const W: usize>(
        self,
        query: &[u64],
        codes: &[u64],
        bound: u32,
        rows: &mut [u32],
        dists: &mut [u32],
    ) -> usize {
        match self {
            Kernel::Scalar => candidates_body::<W>(query, codes, bound, rows, dists),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Popcnt => unsafe {
                x86::candidates_popcnt::<W>(query, codes, bound, rows, dists)
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Avx2 => unsafe { x86::candidates_avx2::<W>(query, codes, bound, rows, dists) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Avx512 => unsafe {
                if W == 4 {
                    avx512::candidates_w4(query, codes, bound, rows, dists)
                } else if W == 8 {
                    avx512::candidates_w8(query, codes, bound, rows, dists)
                } else {
                    x86::candidates_avx512::<W>(query, codes, bound, rows, dists)
                }
            },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: see `dispatch`.
            Kernel::Neon => unsafe { arm::candidates_neon::<W>(query, codes, bound, rows, dists) },
            #[allow(unreachable_patterns)]
            _ => candidates_body::<W>(query, codes, bound, rows, dists),
        }
    }

    /// [`Kernel::candidates`] for four queries at once (concatenated in `queries`), for the
    /// code widths with unrolled instances (256, 512, 1024, 2048 bits); `false` when the width
    /// has none (or, for 256-bit codes on AVX-512, when one query after another is faster),
    /// and the caller then scores the queries one by one.
    pub fn candidates4(
        self,
        queries: &[u64],
        codes: &[u64],
        bounds: [u32; 4],
        out: &mut [Vec<(u32, u32)>; 4],
    ) -> bool {
        match queries.len() / 4 {
            // one query after another through the hand-written kernel is faster here
            #[cfg(target_arch = "x86_64")]
            4 if self == Kernel::Avx512 => return false,
            4 => self.dispatch4::<4>(queries, codes, bounds, out),
            8 => self.dispatch4::<8>(queries, codes, bounds, out),
            16 => self.dispatch4::<16>(queries, codes, bounds, out),
            32 => self.dispatch4::<32>(queries, codes, bounds, out),
            _ => return false,
        }
        true
    }

    #[inline]
    fn dispatch4<const W: usize>(
        self,
        queries: &[u64],
        codes: &[u64],
        bounds: [u32; 4],
        out: &mut [Vec<(u32, u32)>; 4],
    ) {
        match self {
            Kernel::Scalar => candidates4_body::<W>(queries, codes, bounds, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Popcnt => unsafe { x86::candidates4_popcnt::<W>(queries, codes, bounds, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Avx2 => unsafe { x86::candidates4_avx2::<W>(queries, codes, bounds, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: see `dispatch`.
            Kernel::Avx512 => unsafe { x86::candidates4_avx512::<W>(queries, codes, bounds, out) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: see `dispatch`.
            Kernel::Neon => unsafe { arm::candidates4_neon::<W>(queries, codes, bounds, out) },
            #[allow(unreachable_patterns)]
            _ => candidates4_body::<W>(queries, codes, bounds, out),
        }
    }

    #[inline]
    fn dispatch<const W: usize>(self, query: &[u64], codes: &[u64], out: &mut [u32]) {
        match self {
            Kernel::Scalar => scalar::distances::<W>(query, codes, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kernel::available`/`detect` only hand out these variants when the CPU
            // reports the features, and `from_name` filters through `available`.
            Kernel::Popcnt => unsafe { x86::distances_popcnt::<W>(query, codes, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx2 => unsafe { x86::distances_avx2::<W>(query, codes, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx512 => unsafe { x86::distances_avx512::<W>(query, codes, out) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: as above.
            Kernel::Neon => unsafe { arm::distances_neon::<W>(query, codes, out) },
            #[allow(unreachable_patterns)]
            _ => scalar::distances::<W>(query, codes, out),
        }
    }
}

/// Hamming distance of two codes of equal length, portable (for tests and small work).
pub fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The portable kernel body; `W = 0` means "width taken from the query at run time".
#[inline(always)]
fn distances_body<const W: usize>(query: &[u64], codes: &[u64], out: &mut [u32]) {
    if W == 0 {
        let words = query.len();
        for (code, o) in codes.chunks_exact(words).zip(out.iter_mut()) {
            *o = hamming(query, code);
        }
    } else {
        let q: &[u64; W] = query.try_into().expect("query width equals W");
        for (code, o) in codes.chunks_exact(W).zip(out.iter_mut()) {
            let code: &[u64; W] = code.try_into().expect("chunk width equals W");
            let mut d = 0u32;
            for w in 0..W {
                d += (q[w] ^ code[w]).count_ones();
            }
            *o = d;
        }
    }
}

/// The portable thresholded body: branch-free append of (row, distance) for distance <= bound.
#[inline(always)]
fn candidates_body<const W: usize>(
    query: &[u64],
    codes: &[u64],
    bound: u32,
    rows: &mut [u32],
    dists: &mut [u32],
) -> usize {
    let mut n = 0usize;
    if W == 0 {
        let words = query.len();
        for (r, code) in codes.chunks_exact(words).enumerate() {
            let d = hamming(query, code);
            rows[n] = r as u32;
            dists[n] = d;
            n += (d <= bound) as usize;
        }
    } else {
        let q: &[u64; W] = query.try_into().expect("query width equals W");
        for (r, code) in codes.chunks_exact(W).enumerate() {
            let code: &[u64; W] = code.try_into().expect("chunk width equals W");
            let mut d = 0u32;
            for w in 0..W {
                d += (q[w] ^ code[w]).count_ones();
            }
            rows[n] = r as u32;
            dists[n] = d;
            n += (d <= bound) as usize;
        }
    }
    n
}

/// Four queries against each loaded code: the code's words are read once for four queries,
/// and the loop overhead is shared. Candidates (distance <= the query's bound) are appended to
/// that query's list as (row, distance).
#[inline(always)]
fn candidates4_body<const W: usize>(
    queries: &[u64],
    codes: &[u64],
    bounds: [u32; 4],
    out: &mut [Vec<(u32, u32)>; 4],
) {
    let q: [&[u64; W]; 4] = std::array::from_fn(|j| {
        queries[j * W..(j + 1) * W]
            .try_into()
            .expect("query width equals W")
    });
    for (r, code) in codes.chunks_exact(W).enumerate() {
        let code: &[u64; W] = code.try_into().expect("chunk width equals W");
        for j in 0..4 {
            let mut d = 0u32;
            for w in 0..W {
                d += (q[j][w] ^ code[w]).count_ones();
            }
            if d <= bounds[j] {
                out[j].push((r as u32, d));
            }
        }
    }
}

mod scalar {
    pub(super) fn distances<const W: usize>(query: &[u64], codes: &[u64], out: &mut [u32]) {
        super::distances_body::<W>(query, codes, out)
    }
}

/// Compiles the portable bodies for one instruction set: a `distances` and a `candidates`
/// function with `#[target_feature(enable = $features)]`.
macro_rules! instantiate {
    ($features:literal, $distances:ident, $candidates:ident, $candidates4:ident) => {
        /// # Safety
        /// The CPU must support the target features named in the attribute.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $candidates4<const W: usize>(
            queries: &[u64],
            codes: &[u64],
            bounds: [u32; 4],
            out: &mut [Vec<(u32, u32)>; 4],
        ) {
            super::candidates4_body::<W>(queries, codes, bounds, out)
        }

        /// # Safety
        /// The CPU must support the target features named in the attribute.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $distances<const W: usize>(
            query: &[u64],
            codes: &[u64],
            out: &mut [u32],
        ) {
            super::distances_body::<W>(query, codes, out)
        }

        /// # Safety
        /// The CPU must support the target features named in the attribute.
        #[target_feature(enable = $features)]
        pub(super) unsafe fn $candidates<const W: usize>(
            query: &[u64],
            codes: &[u64],
            bound: u32,
            rows: &mut [u32],
            dists: &mut [u32],
        ) -> usize {
            super::candidates_body::<W>(query, codes, bound, rows, dists)
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    instantiate!(
        "popcnt",
        distances_popcnt,
        candidates_popcnt,
        candidates4_popcnt
    );
    instantiate!(
        "avx2,popcnt",
        distances_avx2,
        candidates_avx2,
        candidates4_avx2
    );
    instantiate!(
        "avx512f,avx512vpopcntdq,popcnt",
        distances_avx512,
        candidates_avx512,
        candidates4_avx512
    );
}

#[cfg(target_arch = "aarch64")]
mod arm {
    instantiate!("neon", distances_neon, candidates_neon, candidates4_neon);
}

/// Asks the CPU to bring `words` into L1 without keeping them in the outer caches.
///
/// A scan streams every code once per pass (32 MB for a million 256-bit codes), which would
/// otherwise evict whatever shares the machine's L2/L3 with it: in the service, the embedding
/// model's weights. The non-temporal hint keeps the stream out of the outer levels; the chunk is
/// still in L1 when the queries of a batch are scored against it.
#[inline]
pub(crate) fn prefetch_stream(words: &[u64]) {
    #[cfg(target_arch = "x86_64")]
    for line in words.chunks(8) {
        // SAFETY: prefetching is a hint that never faults; the address is inside `words`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_NTA }>(
                line.as_ptr().cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = words;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(a: &[u64], b: &[u64]) -> u32 {
        let mut d = 0;
        for (x, y) in a.iter().zip(b) {
            for bit in 0..64 {
                if (x >> bit) & 1 != (y >> bit) & 1 {
                    d += 1;
                }
            }
        }
        d
    }

    proptest! {
        #[test]
        fn every_kernel_matches_bit_by_bit_reference(
            words in prop::sample::select(vec![1usize, 3, 4, 8, 16, 32]),
            seed_codes in proptest::collection::vec(any::<u64>(), 32 * 40),
            n in 0usize..40,
        ) {
            let query = &seed_codes[..words];
            let codes = &seed_codes[words..words + n * words];
            let expected: Vec<u32> = codes.chunks_exact(words).map(|c| naive(query, c)).collect();
            for kernel in Kernel::available() {
                let mut out = vec![0u32; n];
                kernel.distances(query, codes, &mut out);
                prop_assert_eq!(&out, &expected, "kernel {:?}", kernel);
                let bound = (words * 32) as u32;
                let (mut rows, mut dists) = (vec![0u32; n], vec![0u32; n]);
                let m = kernel.candidates(query, codes, bound, &mut rows, &mut dists);
                let want: Vec<(u32, u32)> = expected.iter().enumerate().filter(|(_, &d)| d <= bound).map(|(r, &d)| (r as u32, d)).collect();
                let got: Vec<(u32, u32)> = rows[..m].iter().copied().zip(dists[..m].iter().copied()).collect();
                prop_assert_eq!(got, want, "candidates of kernel {:?}", kernel);
            }
        }
    }

    #[test]
    fn extremes() {
        let a = [u64::MAX; 4];
        let b = [0u64; 4];
        for kernel in Kernel::available() {
            let mut out = [0u32; 2];
            let codes: Vec<u64> = a.iter().chain(b.iter()).copied().collect();
            kernel.distances(&b, &codes, &mut out);
            assert_eq!(out, [256, 0], "{kernel:?}");
        }
    }
}
