//! The body of optkit's fuzz target for `model.int8` (see `fuzz/` and opt-core's
//! `fuzzing`): a decoded model must also run, so the decoder has to refuse every layer list
//! whose shapes do not chain.

/// A `model.int8` file (as given, and with a valid checksum, see
/// `opt_core::fuzzing::with_valid_crc`), decoded and, when small enough for a fuzzing
/// process, run on one black image.
pub fn int8(data: &[u8]) {
    for bytes in [data.to_vec(), opt_core::fuzzing::with_valid_crc(data)] {
        let Ok(model) = crate::qformat::decode(&bytes, "fuzz") else {
            continue;
        };
        let i = model.input;
        let pixels = i.channels * i.height * i.width;
        if pixels <= 1 << 16 {
            let _ = model.forward(&vec![0u8; pixels], 1, 1);
        }
    }
}
