//! Integer matrix kernels: `C = A · Bᵀ` with 8-bit operands (int8 weights, int8 or uint8
//! activations) and 32-bit accumulation. See [`pack`] for the operand layouts: a convolution
//! is `weights · patches` (im2col written straight into the packed layout), a linear layer
//! `input · weights`.
//!
//! Two implementations share one contract: [`reference`] (plain loops, the definition) and
//! [`avx2`] (256-bit `vpmaddwd` on 6x16 output tiles). [`Isa::detect`] picks AVX2 at run time
//! when the CPU has it; tests check the two agree exactly on many random shapes.

pub mod avx2;
pub mod pack;
pub mod reference;

use std::ops::Range;

pub use pack::{Lhs, Rhs};

/// Which kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isa {
    /// Portable loops (the reference).
    Generic,
    /// x86-64 AVX2.
    Avx2,
}

impl Isa {
    /// The best kernel this CPU supports.
    pub fn detect() -> Self {
        if avx2::available() {
            Isa::Avx2
        } else {
            Isa::Generic
        }
    }

    /// Every kernel this CPU can run (the reference first).
    pub fn all_available() -> Vec<Isa> {
        let mut v = vec![Isa::Generic];
        if avx2::available() {
            v.push(Isa::Avx2);
        }
        v
    }

    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
        }
    }
}

/// `c[i * b.cols + j] = Σ_k a[i][k] · b[j][k]` for every row `i` of `a` and column `j` of `b`,
/// on the calling thread.
///
/// # Panics
/// When `a` and `b` have different `k`, or `c` is not `a.rows * b.cols` long (a programming
/// error, not an input error: callers size the buffers).
pub fn gemm(isa: Isa, a: &Lhs, b: &Rhs, c: &mut [i32]) {
    gemm_threads(isa, a, b, c, 1)
}

/// [`gemm`] with the rows of `a` split over up to `threads` tasks of rayon's pool (each output
/// row is computed by one task, so the result is identical for any thread count).
pub fn gemm_threads(isa: Isa, a: &Lhs, b: &Rhs, c: &mut [i32], threads: usize) {
    use rayon::prelude::*;
    assert_eq!(a.k, b.k, "operands must share the reduction length");
    assert_eq!(
        c.len(),
        a.rows * b.cols,
        "output must hold a.rows * b.cols values"
    );
    let run = |rows: Range<usize>, c: &mut [i32]| match isa {
        Isa::Avx2 => avx2::gemm(a, rows, b, c),
        Isa::Generic => reference::gemm(a, rows, b, c),
    };
    // Waking another thread costs tens of microseconds on a busy machine: below about four
    // million multiply-accumulates per task (a LeNet-5 layer at batch 1) it costs more than it
    // saves (measured: LeNet-5 batch-1 latency 0.13 ms on one thread, 0.27 ms with conv2 split).
    let work = a.rows * b.cols * a.k;
    let threads = threads.clamp(1, a.rows.max(1)).min(work / 4_000_000 + 1);
    if threads == 1 || b.cols == 0 {
        return run(0..a.rows, c);
    }
    let per = a.rows.div_ceil(threads);
    c.par_chunks_mut(per * b.cols)
        .enumerate()
        .for_each(|(t, chunk)| {
            run(t * per..(t * per + per).min(a.rows), chunk);
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_core::rng::SplitMix64;

    fn random_i8(n: usize, rng: &mut SplitMix64) -> Vec<i8> {
        (0..n).map(|_| (rng.next_u64() % 256) as u8 as i8).collect()
    }

    /// The definition, straight from the unpacked values.
    fn naive(m: usize, n: usize, k: usize, a: &[i8], b: &[i8]) -> Vec<i32> {
        let mut c = vec![0i32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|t| a[i * k + t] as i32 * b[j * k + t] as i32)
                    .sum();
            }
        }
        c
    }

    #[test]
    fn every_kernel_matches_the_definition_on_random_shapes() {
        let mut rng = SplitMix64::new(11);
        let isas = Isa::all_available();
        // Edges included: k below, at and above the 16-wide step, rows not multiples of the tile.
        let mut shapes = vec![
            (1, 1, 1),
            (6, 16, 2),
            (7, 17, 3),
            (1, 33, 33),
            (13, 40, 500),
        ];
        for _ in 0..200 {
            let r = |rng: &mut SplitMix64, hi: u64| 1 + (rng.next_u64() % hi) as usize;
            shapes.push((r(&mut rng, 20), r(&mut rng, 40), r(&mut rng, 80)));
        }
        for (m, n, k) in shapes {
            let a = random_i8(m * k, &mut rng);
            let b = random_i8(n * k, &mut rng);
            let want = naive(m, n, k, &a, &b);
            let (pa, pb) = (Lhs::new(m, k, &a), Rhs::new(n, k, &b));
            for &isa in &isas {
                let mut c = vec![0i32; m * n];
                gemm(isa, &pa, &pb, &mut c);
                assert_eq!(c, want, "{isa:?} m={m} n={n} k={k}");
            }
        }
        // Split over threads: the same values.
        let (m, n, k) = (37, 29, 700);
        let (a, b) = (random_i8(m * k, &mut rng), random_i8(n * k, &mut rng));
        let want = naive(m, n, k, &a, &b);
        for isa in isas {
            for threads in [2, 3, 8] {
                let mut c = vec![0i32; m * n];
                gemm_threads(
                    isa,
                    &Lhs::new(m, k, &a),
                    &Rhs::new(n, k, &b),
                    &mut c,
                    threads,
                );
                assert_eq!(c, want, "{isa:?} threads={threads}");
            }
        }
    }

    #[test]
    fn extremes_do_not_saturate() {
        // -128 x -128 everywhere: the largest products; 16-bit pair sums would overflow.
        let k = 1000;
        let a = vec![-128i8; 3 * k];
        let b = vec![-128i8; 5 * k];
        for isa in Isa::all_available() {
            let mut c = vec![0i32; 15];
            gemm(isa, &Lhs::new(3, k, &a), &Rhs::new(5, k, &b), &mut c);
            assert!(c.iter().all(|&v| v == 128 * 128 * k as i32), "{isa:?}");
        }
        // uint8 activations at 255 against -128 weights: the most negative products.
        let a = vec![255u8; 7 * k];
        for isa in Isa::all_available() {
            let mut c = vec![0i32; 35];
            gemm(isa, &Lhs::new(7, k, &a), &Rhs::new(5, k, &b), &mut c);
            assert!(c.iter().all(|&v| v == -255 * 128 * k as i32), "{isa:?}");
        }
    }
}
