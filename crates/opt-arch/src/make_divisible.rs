//! Channel rounding shared by MobileNet V2/V3 and EfficientNet (torchvision's
//! `_make_divisible`, from the TensorFlow reference implementations).

/// Rounds `value` to the nearest multiple of `divisor` (at least `divisor`), going one multiple
/// up when rounding down would lose more than 10% of `value`.
///
/// ```
/// use opt_arch::make_divisible;
/// assert_eq!(make_divisible(32.0 * 0.75, 8), 24);
/// assert_eq!(make_divisible(1280.0 * 0.35, 8), 448);
/// assert_eq!(make_divisible(10.0, 8), 16); // 8 would lose 20%
/// ```
pub fn make_divisible(value: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let rounded = (((value + d / 2.0) / d).floor() * d).max(d);
    let out = if rounded < 0.9 * value {
        rounded + d
    } else {
        rounded
    };
    out as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from torchvision 0.29's `_make_divisible`.
    #[test]
    fn matches_torchvision() {
        for (v, want) in [
            (32.0, 32),
            (16.0 * 0.5, 8),
            (24.0 * 1.4, 32),
            (40.0 * 1.1, 48),
            (112.0 * 1.8, 200),
            (320.0 * 2.0, 640),
            (72.0 / 4.0, 24),
            (3.0, 8),
            (36.0, 40),
            (44.0, 48),
        ] {
            assert_eq!(make_divisible(v, 8), want, "{v}");
        }
    }
}
