//! Operands of the integer kernels. Values are int8 or uint8 (activations with a zero point),
//! widened to 16 bits so one `vpmaddwd` multiplies sixteen of them and sums adjacent pairs into
//! 32-bit lanes without saturating (|x·y| ≤ 255·128, a pair sum fits easily).
//!
//! The product is `C[i][j] = Σ_k A[i][k] · B[j][k]` with
//! - [`Lhs`] (`A`): rows stored whole, the reduction axis in pairs, each pair one `i32` that the
//!   kernel broadcasts to every lane;
//! - [`Rhs`] (`B`): columns grouped in panels of [`Rhs::PANEL`], each panel storing, for every
//!   pair of reduction steps, its 16 columns' two values side by side (32 `i16`, two 256-bit
//!   registers), so one load feeds 16 outputs at once and no horizontal sum is ever needed.
//!
//! A convolution is `weights (Lhs, [out, in·kh·kw]) · patches (Rhs, one column per output
//! pixel)`, which writes its output channel-major as burn's NCHW layout does; a linear layer is
//! `input (Lhs, [batch, in]) · weights (Rhs, one column per output)`.

/// The broadcast operand: `rows` rows of `k` values, packed two per `i32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lhs {
    /// Number of rows.
    pub rows: usize,
    /// Reduction length (values per row).
    pub k: usize,
    /// Pairs per row: `k / 2` rounded up (an odd `k` gets a zero partner).
    pub pairs: usize,
    /// `rows * pairs` packed pairs: the low 16 bits hold value `2t`, the high 16 bits `2t + 1`.
    pub data: Vec<i32>,
    /// Sum of each row's values.
    pub row_sums: Vec<i32>,
}

/// Two 16-bit values in one 32-bit word, the first in the low half (the lane order of
/// `vpmaddwd`).
pub fn pair(lo: i16, hi: i16) -> i32 {
    (lo as u16 as u32 | (hi as u16 as u32) << 16) as i32
}

/// The two 16-bit values of a [`pair`].
pub fn unpair(p: i32) -> (i16, i16) {
    (p as u32 as u16 as i16, (p as u32 >> 16) as u16 as i16)
}

impl Lhs {
    /// `rows` rows of zeros, to be filled with [`Lhs::set_row`].
    pub fn zeroed(rows: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        Self {
            rows,
            k,
            pairs,
            data: vec![0; rows * pairs],
            row_sums: vec![0; rows],
        }
    }

    /// Packs `rows` rows of `k` values stored row-major in `values`.
    ///
    /// # Panics
    /// When `values` does not hold `rows * k` values.
    pub fn new<T: Copy + Into<i16>>(rows: usize, k: usize, values: &[T]) -> Self {
        assert_eq!(values.len(), rows * k, "values must hold rows * k entries");
        let mut p = Self::zeroed(rows, k);
        for r in 0..rows {
            p.set_row(r, &values[r * k..(r + 1) * k]);
        }
        p
    }

    /// Overwrites row `r` with `values` (`k` of them).
    pub fn set_row<T: Copy + Into<i16>>(&mut self, r: usize, values: &[T]) {
        debug_assert_eq!(values.len(), self.k);
        let row = &mut self.data[r * self.pairs..(r + 1) * self.pairs];
        let mut sum = 0i32;
        for (t, slot) in row.iter_mut().enumerate() {
            let lo: i16 = values[2 * t].into();
            let hi: i16 = values.get(2 * t + 1).map_or(0, |&v| v.into());
            sum += lo as i32 + hi as i32;
            *slot = pair(lo, hi);
        }
        self.row_sums[r] = sum;
    }

    /// Row `r`'s packed pairs.
    pub fn row(&self, r: usize) -> &[i32] {
        &self.data[r * self.pairs..(r + 1) * self.pairs]
    }
}

/// The vector operand: `cols` columns of `k` values in panels of [`Rhs::PANEL`] columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Rhs {
    /// Number of columns (outputs per row of `C`).
    pub cols: usize,
    /// Reduction length.
    pub k: usize,
    /// Pairs of reduction steps: `k / 2` rounded up.
    pub pairs: usize,
    /// `panels * pairs * 2 * PANEL` values; columns past `cols` and the odd tail are zero.
    pub data: Vec<i16>,
    /// Sum of each column's values.
    pub col_sums: Vec<i32>,
}

impl Rhs {
    /// Columns per panel (two 256-bit registers of 32-bit outputs).
    pub const PANEL: usize = 16;

    /// `cols` columns of zeros.
    pub fn zeroed(cols: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        Self {
            cols,
            k,
            pairs,
            data: vec![0; cols.div_ceil(Self::PANEL) * pairs * 2 * Self::PANEL],
            col_sums: vec![0; cols],
        }
    }

    /// Packs `cols` columns of `k` values, column `j` stored contiguously at `values[j * k..]`
    /// (the layout of a linear layer's `[out, in]` weight).
    ///
    /// # Panics
    /// When `values` does not hold `cols * k` values.
    pub fn new<T: Copy + Into<i16>>(cols: usize, k: usize, values: &[T]) -> Self {
        assert_eq!(values.len(), cols * k, "values must hold cols * k entries");
        let mut p = Self::zeroed(cols, k);
        for j in 0..cols {
            let mut sum = 0i32;
            for (kk, &v) in values[j * k..(j + 1) * k].iter().enumerate() {
                let v: i16 = v.into();
                sum += v as i32;
                let at = p.index(j, kk);
                p.data[at] = v;
            }
            p.col_sums[j] = sum;
        }
        p
    }

    /// Where value `kk` of column `j` lives in [`Rhs::data`].
    #[inline]
    pub fn index(&self, j: usize, kk: usize) -> usize {
        let (panel, lane) = (j / Self::PANEL, j % Self::PANEL);
        ((panel * self.pairs + kk / 2) * Self::PANEL + lane) * 2 + kk % 2
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.cols.div_ceil(Self::PANEL)
    }

    /// Panel `q`: `pairs` blocks of `2 * PANEL` values.
    pub fn panel(&self, q: usize) -> &[i16] {
        let len = self.pairs * 2 * Self::PANEL;
        &self.data[q * len..(q + 1) * len]
    }

    /// Recomputes [`Rhs::col_sums`] from the data (after filling it through [`Rhs::index`]).
    pub fn refresh_sums(&mut self) {
        for j in 0..self.cols {
            self.col_sums[j] = (0..self.k)
                .map(|kk| self.data[self.index(j, kk)] as i32)
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_and_layouts_hold_every_value_once() {
        for (lo, hi) in [(0, 0), (-1, 1), (i16::MIN, i16::MAX), (255, -128)] {
            assert_eq!(unpair(pair(lo, hi)), (lo, hi));
        }
        let (n, k) = (21, 7);
        let values: Vec<i8> = (0..n * k).map(|v| (v % 200) as i16 as i8).collect();
        let b = Rhs::new(n, k, &values);
        let mut seen = vec![false; b.data.len()];
        for j in 0..n {
            for kk in 0..k {
                let at = b.index(j, kk);
                assert!(!seen[at]);
                seen[at] = true;
                assert_eq!(b.data[at], values[j * k + kk] as i16);
            }
            assert_eq!(
                b.col_sums[j],
                values[j * k..(j + 1) * k]
                    .iter()
                    .map(|&v| v as i32)
                    .sum::<i32>()
            );
        }
        let a = Lhs::new(n, k, &values);
        assert_eq!(a.pairs, 4);
        assert_eq!(unpair(a.row(2)[3]), (values[2 * k + 6] as i16, 0));
    }
}
