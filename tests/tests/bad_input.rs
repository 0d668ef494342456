//! Every bad input gets a clear message naming the problem, exit code 2, no panic, and
//! nothing half-written.

use optkit_tests::{TempDir, optkit, tiny_config, write_idx_dir};

fn pipeline_with(config: &str, extra_args: &[&str]) -> (optkit_tests::Outcome, TempDir) {
    let dir = TempDir::new("bad");
    let cfg = dir.write("c.toml", config);
    let mut args = vec!["pipeline", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra_args);
    (optkit(&args), dir)
}

fn assert_input_error(o: &optkit_tests::Outcome, needles: &[&str]) {
    assert_eq!(o.code, 2, "{}", o.stderr);
    for n in needles {
        assert!(o.stderr.contains(n), "missing {n:?} in: {}", o.stderr);
    }
}

#[test]
fn missing_config_file() {
    let o = optkit(&["pipeline", "--config", "/no/such/config.toml"]);
    assert_input_error(&o, &["cannot read config file /no/such/config.toml"]);
}

#[test]
fn malformed_toml() {
    let (o, _d) = pipeline_with("version = 1\n[model\narch = \"cnn\"\n", &[]);
    assert_input_error(&o, &["invalid config", "line 2"]);
}

#[test]
fn unknown_key_and_wrong_type() {
    let out = TempDir::new("o");
    let (o, _d) = pipeline_with(
        &tiny_config(out.path(), "").replace("epochs = 2", "epochz = 2"),
        &[],
    );
    assert_input_error(&o, &["train.epochz", "unknown field"]);
    let (o, _d) = pipeline_with(
        &tiny_config(out.path(), "").replace("epochs = 2", "epochs = \"two\""),
        &[],
    );
    assert_input_error(&o, &["train.epochs", "invalid type"]);
}

#[test]
fn out_of_range_values() {
    let out = TempDir::new("o");
    let base = tiny_config(out.path(), "");
    for (from, to, needle) in [
        ("epochs = 2", "epochs = 0", "train.epochs = 0"),
        (
            "learning_rate = 0.003",
            "learning_rate = 0.0",
            "train.learning_rate = 0",
        ),
        (
            "learning_rate = 0.003",
            "learning_rate = -1.0",
            "train.learning_rate = -1",
        ),
        ("batch_size = 32", "batch_size = 0", "train.batch_size = 0"),
        (
            "test_limit = 200",
            "test_limit = 200\nvalidation_split = 1.5",
            "data.validation_split = 1.5",
        ),
        (
            "test_limit = 200",
            "test_limit = 200\nvalidation_split = 0.0",
            "data.validation_split = 0",
        ),
    ] {
        let (o, _d) = pipeline_with(&base.replace(from, to), &[]);
        assert_input_error(&o, &[needle]);
    }
    assert!(!out.path().join("report.json").exists());
}

#[test]
fn missing_data_directory() {
    let out = TempDir::new("o");
    let (o, _d) = pipeline_with(
        &tiny_config(out.path(), ""),
        &["--data-dir", "/no/such/data"],
    );
    assert_input_error(&o, &["/no/such/data", "does not exist"]);
}

/// Changes one IDX file's bytes, given its name.
type Tamper = Box<dyn Fn(&str, Vec<u8>) -> Vec<u8>>;

#[test]
fn broken_idx_files() {
    let cases: Vec<(&str, Tamper, &str)> = vec![
        (
            "truncated",
            Box::new(|n: &str, b: Vec<u8>| {
                if n.starts_with("train-images") {
                    b[..b.len() - 100].to_vec()
                } else {
                    b
                }
            }),
            "truncated",
        ),
        (
            "magic",
            Box::new(|n: &str, mut b: Vec<u8>| {
                if n.starts_with("train-labels") {
                    b[2] = 9;
                }
                b
            }),
            "wrong magic number",
        ),
        (
            "count",
            Box::new(|n: &str, b: Vec<u8>| {
                if n.starts_with("t10k-labels") {
                    optkit_core_encode_labels(19)
                } else {
                    b
                }
            }),
            "20 images but 19 labels",
        ),
        (
            "label",
            Box::new(|n: &str, mut b: Vec<u8>| {
                if n.starts_with("train-labels") {
                    let l = b.len();
                    b[l - 1] = 12;
                }
                b
            }),
            "label 12 at item 19",
        ),
    ];
    for (tag, tamper, needle) in cases {
        let data = TempDir::new(tag);
        write_idx_dir(data.path(), 20, tamper);
        let out = TempDir::new("o");
        let (o, _d) = pipeline_with(
            &tiny_config(out.path(), ""),
            &["--data-dir", data.path().to_str().unwrap()],
        );
        assert_input_error(&o, &[needle]);
        assert!(!out.path().join("report.json").exists(), "{tag}");
    }
}

fn optkit_core_encode_labels(n: usize) -> Vec<u8> {
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    opt_core::data::idx::encode_idx(opt_core::data::idx::LABELS_MAGIC, &[n], &labels)
}

#[test]
fn output_path_is_an_existing_file() {
    let d = TempDir::new("file");
    let file = d.write("taken", b"precious");
    let (o, _c) = pipeline_with(&tiny_config(&file, ""), &[]);
    assert_input_error(&o, &["is an existing file"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
}

#[test]
fn unknown_backend() {
    let out = TempDir::new("o");
    let (o, _d) = pipeline_with(&tiny_config(out.path(), ""), &["--backend", "cuda"]);
    assert_input_error(&o, &["unknown backend 'cuda'", "flex, ndarray, wgpu"]);
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let o = optkit(&["frobnicate"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("frobnicate"), "{}", o.stderr);
}

#[test]
fn bad_architectures() {
    let out = TempDir::new("o");
    let zoo = |model: &str| {
        tiny_config(out.path(), "").replace("arch = \"cnn\"\nblocks = [4, 8]\nfc = 16", model)
    };
    let (o, _d) = pipeline_with(&zoo("arch = \"resnet50\""), &[]);
    assert_input_error(
        &o,
        &[
            "unknown architecture `resnet50`",
            "mobilenet_v2",
            "efficientnet_b7",
        ],
    );
    let (o, _d) = pipeline_with(&zoo("arch = \"mobilenet_v2\"\nwidth = 0.0"), &[]);
    assert_input_error(&o, &["model.width", "positive"]);
    let (o, _d) = pipeline_with(&zoo("arch = \"mobilenet_v2\"\nwidht = 0.5"), &[]);
    assert_input_error(&o, &["unknown field `widht`"]);
    // The ImageNet stem on 28x28 images: stride 32 > 28.
    let (o, _d) = pipeline_with(&zoo("arch = \"efficientnet_b0\"\nsmall_input = false"), &[]);
    assert_input_error(&o, &["total stride 32", "28x28", "small_input = true"]);
    assert!(
        !out.path().join("baseline").exists(),
        "nothing trained or written"
    );
    for args in [
        vec!["inspect", "--arch", "mobilenet_v9"],
        vec!["inspect", "--arch", "mobilenet_v2", "--width", "-1"],
        vec!["inspect", "--arch", "mobilenet_v2", "--classes", "0"],
        vec!["inspect", "--arch", "lenet5", "--width", "0.5"],
    ] {
        let o = optkit(&args);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("error: "), "{args:?}: {}", o.stderr);
    }
}
