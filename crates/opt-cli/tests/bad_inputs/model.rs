//! Broken and crafted model folders: model.json, weights files, int8 files.

use super::*;

pub(super) fn cases() -> Vec<Case> {
    let w = world();
    let notes = w.root.join("user/notes.txt");
    let mut cases = vec![
        case(
            "eval-no-model",
            &["eval", "--model", &s(w.root.join("user")), "--backend", "flex"],
            "model.json",
        ),
        eval_meta("meta-not-json", "model.json", |m| *m = "not json".into()),
        eval_meta("meta-version", "format_version 9", |m| {
            m["format_version"] = 9.into()
        }),
        eval_meta("weights-parent-path", "../notes.txt", |m| {
            m["weights"] = "../notes.txt".into()
        }),
        eval_meta("weights-absolute-path", &s(&notes), |m| {
            m["weights"] = s(&notes).into()
        }),
        eval_meta("weights-dev-zero", "/dev/zero", |m| {
            m["weights"] = "/dev/zero".into()
        }),
        eval_meta("weights-unknown-name", "weights.bin", |m| {
            m["weights"] = "weights.bin".into()
        }),
        eval_meta("meta-mlp-width-1e12", "model.hidden[0]", |m| {
            m["spec"]["arch"] = serde_json::json!({"arch": "mlp", "hidden": [1_000_000_000_000u64]})
        }),
        eval_meta("meta-cnn-64-blocks", "model.blocks", |m| {
            m["spec"]["arch"] = serde_json::json!({"arch": "cnn", "blocks": vec![4; 64], "fc": 8})
        }),
        eval_meta("input-side-2-32", "input.height", |m| {
            m["spec"]["input"]["height"] = 4_294_967_296u64.into()
        }),
        eval_meta("normalization-std-0", "normalization.std", |m| {
            m["normalization"]["std"] = 0.0.into()
        }),
        eval_meta("normalization-mean-range", "normalization.mean", |m| {
            m["normalization"]["mean"] = 7.0.into()
        }),
        eval_meta("class-names-count", "class names", |m| {
            m["class_names"] = serde_json::json!(["a", "b"])
        }),
        eval_meta("spec-other-widths", "weights.safetensors", |m| {
            m["spec"]["arch"]["fc"] = 9.into()
        }),
        eval_weights("safetensors-truncated", "weights.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "weights.safetensors"),
        {
            let mut big = std::fs::read(w.float_model.join("weights.safetensors")).unwrap();
            big.extend(std::iter::repeat_n(0u8, 8 << 20));
            eval_weights("weights-larger-than-spec", "weights.safetensors", &big, "more than the")
        },
        eval_weights(
            "sparse-not-sparse",
            "weights.sparse",
            &std::fs::read(w.float_model.join("weights.safetensors")).unwrap(),
            "weights.sparse",
        ),
        eval_weights(
            "sparse-payload-2-64",
            "weights.sparse",
            &opt_core::framed::write_framed(
                b"OPTKSPRS",
                1,
                br#"{"tensors":[{"name":"head.weight","shape":[10,16],"encoding":"dense","nonzero":160}],"payload_bytes":18446744073709551615}"#,
                &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
                false,
            ),
            "more than its tensors can need",
        ),
        eval_weights(
            "sparse-huge-tensor",
            "weights.sparse",
            &opt_core::framed::write_framed(
                b"OPTKSPRS",
                1,
                br#"{"tensors":[{"name":"head.weight","shape":[4294967296,4294967296],"encoding":"dense","nonzero":0}],"payload_bytes":0}"#,
                &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
                false,
            ),
            "weights.sparse",
        ),
        eval_weights(
            "wq-damaged",
            "weights.wq",
            b"OPTKQWTS\x01\x00\x00\x00\xff\xff\xff\xff",
            "weights.wq",
        ),
        {
            let m = model_copy("int8-truncated", true, |_| {});
            let b = std::fs::read(m.join("model.int8")).unwrap();
            std::fs::write(m.join("model.int8"), &b[..b.len() / 2]).unwrap();
            case("int8-truncated", &["eval", "--model", &s(&m)], "model.int8")
        },
        {
            let m = model_copy("int8-other-model", true, |meta| {
                meta["spec"]["classes"] = 12.into();
                meta["class_names"] = serde_json::json!((0..12).map(|i| i.to_string()).collect::<Vec<_>>());
            });
            case("int8-other-model", &["eval", "--model", &s(&m)], "model.int8")
        },
    ];
    // The model meets data of another size.
    let data = idx_dir("eval-data-other-size", (40, 20, 32), |_, b| b);
    let mut c = case(
        "eval-data-other-size",
        &[
            "eval",
            "--model",
            &s(&w.float_model),
            "--data-dir",
            &s(&data),
            "--backend",
            "flex",
        ],
        "32x32",
    );
    c.cwd = case_dir_keep("eval-data-other-size");
    cases.push(c);
    // Data whose labels exceed the model's classes is refused by the loader.
    cases
}
