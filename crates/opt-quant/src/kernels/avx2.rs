//! The AVX2 kernel: an `R x 16` tile of outputs per pass (`R` ≤ 6 rows of `A`, one panel of
//! `B`), twelve 256-bit accumulators. Each step broadcasts one packed pair of every `A` row and
//! multiplies it with the panel's two registers through `vpmaddwd` (sixteen 16-bit products
//! summed pairwise into eight 32-bit lanes; nothing saturates, see [`super::pack`]), so every
//! lane is one output and no horizontal sum is needed.
//!
//! This is the one place in optkit with `unsafe` code: the vector loads and stores (raw
//! pointers into slices whose length was checked by slicing) and the call into a function
//! compiled for AVX2, made only after the CPU was checked for it.
#![allow(unsafe_code)]

use std::ops::Range;

use super::pack::{Lhs, Rhs};

/// Whether this CPU runs the AVX2 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Rows `rows` of `C = A · Bᵀ` into `c` with AVX2; the reference kernel on CPUs without it.
pub fn gemm(a: &Lhs, rows: Range<usize>, b: &Rhs, c: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the CPU supports AVX2 (checked on the line above), which is the only
        // requirement `x86::gemm` adds to its safe signature.
        unsafe { x86::gemm(a, rows, b, c) };
        return;
    }
    super::reference::gemm(a, rows, b, c)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Lhs, Range, Rhs};

    /// Tile height: 6 rows x 2 registers = 12 accumulators, plus 2 panel registers and one
    /// broadcast, within the 16 AVX2 registers.
    const MR: usize = 6;
    const PANEL: usize = Rhs::PANEL;

    /// Sixteen `i16` starting at `at` as a vector.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(values: &[i16], at: usize) -> __m256i {
        let chunk: &[i16] = &values[at..at + 16];
        // SAFETY: `chunk` holds exactly 16 i16 values (32 bytes, bounds checked by the slice
        // above) and `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) }
    }

    /// The eight 32-bit lanes of `v`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn lanes(v: __m256i) -> [i32; 8] {
        let mut out = [0i32; 8];
        // SAFETY: `out` is 32 writable bytes and `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast::<__m256i>(), v) };
        out
    }

    /// Outputs of rows `i..i + R` of `A` against panel `q` of `B`, written to `c` (row `r` of
    /// the tile at `c[(i - first + r) * b.cols + 16q ..]`, only the panel's real columns).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn tile<const R: usize>(a: &Lhs, i: usize, first: usize, b: &Rhs, q: usize, c: &mut [i32]) {
        let zero = _mm256_setzero_si256();
        let mut acc = [[zero; 2]; R];
        let mut ra: [&[i32]; R] = [&[]; R];
        for (r, slot) in ra.iter_mut().enumerate() {
            *slot = a.row(i + r);
        }
        let panel = b.panel(q);
        // `t` indexes every row of the tile and the panel at once.
        #[allow(clippy::needless_range_loop)]
        for t in 0..a.pairs {
            let b0 = load(panel, t * 2 * PANEL);
            let b1 = load(panel, t * 2 * PANEL + PANEL);
            for r in 0..R {
                let va = _mm256_set1_epi32(ra[r][t]);
                acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(va, b0));
                acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(va, b1));
            }
        }
        let j0 = q * PANEL;
        let width = (b.cols - j0).min(PANEL);
        for (r, pair) in acc.iter().enumerate() {
            let at = (i - first + r) * b.cols + j0;
            let (lo, hi) = (lanes(pair[0]), lanes(pair[1]));
            let out = &mut c[at..at + width];
            let split = width.min(8);
            out[..split].copy_from_slice(&lo[..split]);
            out[split..].copy_from_slice(&hi[..width - split]);
        }
    }

    /// See [`super::gemm`]: full 6-row tiles, the last rows in one smaller tile.
    #[target_feature(enable = "avx2")]
    pub fn gemm(a: &Lhs, rows: Range<usize>, b: &Rhs, c: &mut [i32]) {
        let first = rows.start;
        let mut i = first;
        while i < rows.end {
            let mi = (rows.end - i).min(MR);
            for q in 0..b.panels() {
                match mi {
                    6 => tile::<6>(a, i, first, b, q, c),
                    5 => tile::<5>(a, i, first, b, q, c),
                    4 => tile::<4>(a, i, first, b, q, c),
                    3 => tile::<3>(a, i, first, b, q, c),
                    2 => tile::<2>(a, i, first, b, q, c),
                    _ => tile::<1>(a, i, first, b, q, c),
                }
            }
            i += mi;
        }
    }
}
