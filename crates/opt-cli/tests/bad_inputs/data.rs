//! Broken and crafted IDX data folders: truncated, overflowing, inflating, mismatched.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let sizes = (40, 20, 28);
    let mut cases = vec![
        {
            let mut c = pipeline(
                "data-missing",
                TINY,
                &["--data-dir", "/no/such/data"],
                "/no/such/data",
            );
            c.needle = "/no/such/data".into();
            c
        },
        data_case(
            "idx-truncated",
            sizes,
            only("train-images-idx3-ubyte", |b| b[..b.len() - 100].to_vec()),
            "train-images-idx3-ubyte",
        ),
        data_case(
            "idx-magic",
            sizes,
            only("train-labels-idx1-ubyte", |mut b| {
                b[2] = 9;
                b
            }),
            "wrong magic number",
        ),
        data_case(
            "idx-dims-overflow",
            sizes,
            only("train-images-idx3-ubyte", |mut b| {
                for i in 0..3 {
                    b[4 + 4 * i..8 + 4 * i].copy_from_slice(&u32::MAX.to_be_bytes());
                }
                b
            }),
            "train-images-idx3-ubyte",
        ),
        data_case(
            "idx-gzip-bomb",
            sizes,
            only("train-images-idx3-ubyte", |b| {
                // The header says 40 images; the stream inflates to 3 GiB.
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&b).unwrap();
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..3072 {
                    e.write_all(&zeros).unwrap();
                }
                e.finish().unwrap()
            }),
            "inflates to more than its header declares",
        ),
        data_case(
            "idx-gzip-truncated",
            sizes,
            only("t10k-images-idx3-ubyte", |b| {
                let g = gzip(&b);
                g[..g.len() / 2].to_vec()
            }),
            "gzip",
        ),
        data_case(
            "idx-label-count",
            sizes,
            only("t10k-labels-idx1-ubyte", |_| {
                encode_idx(LABELS_MAGIC, &[19], &[0; 19])
            }),
            "20 images but 19 labels",
        ),
        data_case(
            "idx-label-too-large",
            sizes,
            only("train-labels-idx1-ubyte", |mut b| {
                let l = b.len();
                b[l - 1] = 12;
                b
            }),
            "label 12",
        ),
        data_case(
            "idx-trailing-bytes",
            sizes,
            only("train-labels-idx1-ubyte", |mut b| {
                b.push(1);
                b
            }),
            "trailing garbage",
        ),
        data_case(
            "idx-declares-8gib",
            sizes,
            only("train-images-idx3-ubyte", |mut b| {
                b[4..8].copy_from_slice(&40_000_000u32.to_be_bytes());
                b[8..12].copy_from_slice(&256u32.to_be_bytes());
                b
            }),
            "train-images-idx3-ubyte",
        ),
        data_case("test-split-empty", (40, 0, 28), |_, b| b, "holds no images"),
        data_case(
            "one-training-image",
            (1, 20, 28),
            |_, b| b,
            "leaves one side empty",
        ),
    ];
    // Mixed sizes within one data folder: 28x28 training, 32x32 test images.
    let data = idx_dir("train-test-sizes-differ", (40, 20, 28), |_, b| b);
    let other = idx_dir("train-test-sizes-differ-other", (40, 20, 32), |_, b| b);
    for f in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::copy(other.join(f), data.join(f)).unwrap();
    }
    let mut c = pipeline(
        "train-test-sizes-differ",
        TINY,
        &["--data-dir", &s(&data)],
        "32x32",
    );
    c.cwd = case_dir_keep("train-test-sizes-differ");
    cases.push(c);
    // An IDX "file" that is a folder.
    let data = idx_dir("idx-is-a-folder", sizes, |_, b| b);
    std::fs::remove_file(data.join("train-labels-idx1-ubyte")).unwrap();
    std::fs::create_dir(data.join("train-labels-idx1-ubyte")).unwrap();
    let mut c = pipeline(
        "idx-is-a-folder",
        TINY,
        &["--data-dir", &s(&data)],
        "train-labels-idx1-ubyte",
    );
    c.cwd = case_dir_keep("idx-is-a-folder");
    cases.push(c);
    cases
}
