//! The reference kernel: plain loops, the definition every optimized kernel is checked against.

use std::ops::Range;

use super::pack::{Lhs, Rhs, unpair};

/// Rows `rows` of `C = A · Bᵀ` into `c` (`rows.len() * b.cols` values, row-major).
pub fn gemm(a: &Lhs, rows: Range<usize>, b: &Rhs, c: &mut [i32]) {
    for (o, i) in rows.enumerate() {
        let ra = a.row(i);
        for j in 0..b.cols {
            let mut acc = 0i32;
            for (t, &p) in ra.iter().enumerate() {
                let (lo, hi) = unpair(p);
                acc += lo as i32 * b.data[b.index(j, 2 * t)] as i32;
                acc += hi as i32 * b.data[b.index(j, 2 * t + 1)] as i32;
            }
            c[o * b.cols + j] = acc;
        }
    }
}
