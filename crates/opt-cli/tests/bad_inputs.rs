//! Bad input through the real `optkit` binary, as a careless or a hostile user would give it:
//! broken and crafted config files, data folders, model folders, bundles' destinations and
//! flags. Every case must end with exit code 2 and a one-line message naming the file or key
//! (no panic text), under a 2 GiB address-space limit (so runaway allocations fail the case),
//! and — checked by hashing the whole test tree before and after — without changing any file
//! outside the case's own run folder.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod common;

use common::{TINY, temp, write_idx};
use opt_core::data::idx::{LABELS_MAGIC, encode_idx};
use sha2::{Digest, Sha256};

/// The address-space limit every case runs under (KiB, as `ulimit -v` takes it).
const ADDRESS_SPACE_KIB: u64 = 2 << 20;

/// One bad input.
struct Case {
    name: String,
    args: Vec<String>,
    /// Text the error line must hold (the file, the key, the value).
    needle: String,
    /// Folder the case may write into (its run or output folder); nothing else may change.
    out: Option<PathBuf>,
    /// Working directory (default: the case's folder).
    cwd: PathBuf,
}

/// The shared fixture: a trained float model and its int8 version, written once per process
/// by the real binary, and a tree of user files that no case may touch.
struct World {
    root: PathBuf,
    float_model: PathBuf,
    int8_model: PathBuf,
}

fn optkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_optkit"))
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let root = temp("bad-inputs");
        std::fs::create_dir_all(root.join("cases")).unwrap();
        // The user's own files beside everything: notes, a web app's public/ folder.
        let user = root.join("user");
        std::fs::create_dir_all(user.join("public")).unwrap();
        std::fs::write(user.join("notes.txt"), b"my notes, not a model").unwrap();
        std::fs::write(
            user.join("public/manifest.json"),
            br#"{"name": "My App", "icons": [], "start_url": "/"}"#,
        )
        .unwrap();
        std::fs::write(user.join("public/index.html"), b"<html>my app</html>").unwrap();
        std::fs::write(user.join("taken"), b"precious").unwrap();
        let cfg = root.join("fixture.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"version = 1
[data]
source = "embedded"
train_limit = 300
test_limit = 100
[model]
arch = "cnn"
blocks = [4, 8]
fc = 16
[train]
epochs = 1
batch_size = 32
[[stages]]
kind = "baseline"
[[stages]]
kind = "quantize"
name = "int8"
[stages.quantize.calibration]
samples = 64
[report]
out = "{}"
latency_runs = 3
warmup_runs = 1
throughput_batch = 32
throughput_runs = 1
"#,
                root.join("fixture").display()
            ),
        )
        .unwrap();
        let o = optkit()
            .args(["pipeline", "--config"])
            .arg(&cfg)
            .args(["--backend", "flex"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "fixture: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        World {
            float_model: root.join("fixture/baseline"),
            int8_model: root.join("fixture/int8"),
            root,
        }
    })
}

/// A folder of its own for case `name` (created once; the world starts empty).
fn case_dir(name: &str) -> PathBuf {
    let d = world().root.join("cases").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: impl AsRef<Path>) -> String {
    p.as_ref().display().to_string()
}

fn case(name: &str, args: &[&str], needle: &str) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        needle: needle.into(),
        out: None,
        cwd: case_dir(name),
    }
}

/// Copies the files of `from` into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the float (or int8) model in the case's folder, with `model.json` edited.
fn model_copy(name: &str, int8: bool, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let w = world();
    let dir = case_dir(name).join("model");
    copy_dir(if int8 { &w.int8_model } else { &w.float_model }, &dir);
    let path = dir.join("model.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut meta);
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    dir
}

/// An eval of a model folder whose `model.json` was edited.
fn eval_meta(name: &str, needle: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Case {
    let m = model_copy(name, false, edit);
    case(
        name,
        &["eval", "--model", &s(&m), "--backend", "flex"],
        needle,
    )
}

/// An eval of a model folder whose weights file was replaced by `bytes` (named `file`).
fn eval_weights(name: &str, file: &str, bytes: &[u8], needle: &str) -> Case {
    let m = model_copy(name, false, |meta| meta["weights"] = file.into());
    let _ = std::fs::remove_file(m.join("weights.safetensors"));
    std::fs::write(m.join(file), bytes).unwrap();
    case(
        name,
        &["eval", "--model", &s(&m), "--backend", "flex"],
        needle,
    )
}

/// `optkit pipeline` on the config `text`, writing into the case's `run` folder.
fn pipeline(name: &str, text: &str, extra: &[&str], needle: &str) -> Case {
    let dir = case_dir(name);
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = dir.join("run");
    let mut args = vec![
        "pipeline".to_string(),
        "--config".into(),
        s(&cfg),
        "--out".into(),
        s(&out),
    ];
    if !extra.contains(&"--backend") {
        args.extend(["--backend".into(), "flex".into()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    Case {
        name: name.into(),
        args,
        needle: needle.into(),
        out: Some(out),
        cwd: dir,
    }
}

/// [`TINY`] with `from` replaced by `to`.
fn tiny(name: &str, from: &str, to: &str, needle: &str) -> Case {
    assert!(TINY.contains(from), "{from}");
    pipeline(name, &TINY.replacen(from, to, 1), &[], needle)
}

/// [`TINY`] with `extra` appended.
fn tiny_plus(name: &str, extra: &str, needle: &str) -> Case {
    pipeline(name, &format!("{TINY}{extra}"), &[], needle)
}

/// A data folder of the case, written by [`write_idx`].
fn idx_dir(
    name: &str,
    sizes: (usize, usize, usize),
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
) -> PathBuf {
    let dir = case_dir(name).join("data");
    write_idx(&dir, sizes, 0, tamper);
    dir
}

/// A pipeline on the data folder made by [`idx_dir`].
fn data_case(
    name: &str,
    sizes: (usize, usize, usize),
    tamper: impl Fn(&str, Vec<u8>) -> Vec<u8>,
    needle: &str,
) -> Case {
    let data = idx_dir(name, sizes, tamper);
    let mut c = pipeline(name, TINY, &["--data-dir", &s(&data)], needle);
    c.cwd = case_dir_keep(name);
    c
}

/// The case's folder.
fn case_dir_keep(name: &str) -> PathBuf {
    case_dir(name)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn only(file: &'static str, f: impl Fn(Vec<u8>) -> Vec<u8>) -> impl Fn(&str, Vec<u8>) -> Vec<u8> {
    move |n, b| if n == file { f(b) } else { b }
}

fn config_cases() -> Vec<Case> {
    let dir = case_dir("config-dir");
    vec![
        case(
            "config-missing",
            &["pipeline", "--config", "/no/such/config.toml"],
            "/no/such/config.toml",
        ),
        case(
            "config-is-a-folder",
            &["pipeline", "--config", &s(&dir)],
            &s(&dir),
        ),
        case(
            "config-is-a-device",
            &["pipeline", "--config", "/dev/zero"],
            "not a regular file",
        ),
        pipeline("config-not-utf8", "version = 1\n\u{0}\u{1}", &[], "c.toml"),
        {
            let mut c = pipeline("config-binary", "", &[], "not UTF-8");
            std::fs::write(c.cwd.join("c.toml"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
            c.needle = "not UTF-8".into();
            c
        },
        pipeline("toml-malformed", "version = 1\n[model\n", &[], "line 2"),
        tiny("version-2", "version = 1", "version = 2", "version = 2"),
        tiny("unknown-key", "epochs = 1", "epochz = 1", "train.epochz"),
        tiny(
            "wrong-type",
            "epochs = 1",
            "epochs = \"one\"",
            "train.epochs",
        ),
        tiny("epochs-0", "epochs = 1", "epochs = 0", "train.epochs = 0"),
        tiny(
            "lr-negative",
            "batch_size = 32",
            "batch_size = 32\nlearning_rate = -1.0",
            "train.learning_rate = -1",
        ),
        tiny(
            "batch-0",
            "batch_size = 32",
            "batch_size = 0",
            "train.batch_size = 0",
        ),
        tiny(
            "validation-split",
            "test_limit = 100",
            "test_limit = 100\nvalidation_split = 1.5",
            "data.validation_split = 1.5",
        ),
        tiny(
            "classes-1",
            "test_limit = 100",
            "test_limit = 100\nclasses = 1",
            "data.classes = 1",
        ),
        tiny(
            "test-limit-0",
            "test_limit = 100",
            "test_limit = 0",
            "data.test_limit = 0",
        ),
        tiny(
            "arch-unknown",
            "arch = \"cnn\"\nblocks = [4]\nfc = 8",
            "arch = \"resnet50\"",
            "resnet50",
        ),
        tiny(
            "cnn-64-blocks",
            "blocks = [4]",
            &format!("blocks = {:?}", vec![4; 64]),
            "model.blocks",
        ),
        tiny(
            "mlp-width-1e12",
            "arch = \"cnn\"\nblocks = [4]\nfc = 8",
            "arch = \"mlp\"\nhidden = [1000000000000]",
            "model.hidden[0]",
        ),
        tiny(
            "mobilenet-width-1e15",
            "arch = \"cnn\"\nblocks = [4]\nfc = 8",
            "arch = \"mobilenet_v2\"\nwidth = 1e15",
            "model.width",
        ),
        tiny(
            "no-stages",
            "[[stages]]\nkind = \"baseline\"\n",
            "",
            "stages",
        ),
        tiny(
            "first-stage-not-baseline",
            "kind = \"baseline\"",
            "kind = \"prune\"",
            "stages[0]",
        ),
        tiny_plus(
            "duplicate-stage-name",
            "[[stages]]\nkind = \"prune\"\nname = \"baseline\"\n",
            "stages[1].name",
        ),
        tiny_plus(
            "stage-name-path",
            "[[stages]]\nkind = \"prune\"\nname = \"../escape\"\n",
            "stages[1].name",
        ),
        tiny_plus(
            "from-unknown-stage",
            "[[stages]]\nkind = \"prune\"\nfrom = \"nowhere\"\n",
            "stages[1].from",
        ),
        tiny_plus(
            "prune-target",
            "[[stages]]\nkind = \"prune\"\n[stages.prune]\ntarget = 1.5\n",
            "stages[1].prune.target",
        ),
        tiny_plus(
            "quantize-bits",
            "[[stages]]\nkind = \"quantize\"\n[stages.quantize]\nbits = 3\n",
            "stages[1].quantize.bits",
        ),
        tiny_plus(
            "distill-temperature",
            "[[stages]]\nkind = \"distill\"\n[stages.distill]\ntemperature = 0.0\n",
            "stages[1].distill.temperature",
        ),
        tiny_plus(
            "deploy-outside",
            "[deploy]\npath = \"../elsewhere\"\n",
            "deploy.path",
        ),
        tiny_plus(
            "deploy-is-a-stage",
            "[deploy]\npath = \"baseline\"\n",
            "deploy.path",
        ),
        tiny_plus(
            "deploy-is-the-report",
            "[deploy]\npath = \"report.json\"\n",
            "deploy.path",
        ),
        tiny_plus(
            "tune-step-1e-25",
            "[[stages]]\nkind = \"tune\"\n[stages.tune]\nsampler = { kind = \"grid\" }\n[stages.tune.space]\n\"train.learning_rate\" = { float = [0.001, 0.01], step = 1e-25 }\n",
            "train.learning_rate",
        ),
        tiny_plus(
            "tune-grid-points",
            "[[stages]]\nkind = \"tune\"\n[stages.tune]\nsampler = { kind = \"grid\", grid_points = 1000000000000 }\n[stages.tune.space]\n\"train.learning_rate\" = { float = [0.001, 0.01] }\n",
            "grid_points",
        ),
        tiny_plus(
            "tune-int-range",
            "[[stages]]\nkind = \"tune\"\n[stages.tune.space]\n\"train.batch_size\" = { int = [-9000000000000000000, 9000000000000000000] }\n",
            "train.batch_size",
        ),
        tiny_plus(
            "tune-storage-scheme",
            "[[stages]]\nkind = \"tune\"\n[stages.tune]\nstorage = \"ftp://host/x\"\n[stages.tune.space]\n\"train.learning_rate\" = { float = [0.001, 0.01] }\n",
            "unknown storage scheme 'ftp'",
        ),
        tiny_plus(
            "tune-postgres-password",
            "[[stages]]\nkind = \"tune\"\n[stages.tune]\nstorage = \"postgres://optkit:hunter2@127.0.0.1:1/optkit?connect_timeout=2\"\n[stages.tune.space]\n\"train.learning_rate\" = { float = [0.001, 0.01] }\n",
            "postgres://optkit:***@127.0.0.1:1/optkit",
        ),
        tiny_plus(
            "tune-sslmode",
            "[[stages]]\nkind = \"tune\"\n[stages.tune]\nstorage = \"postgres://u:hunter2@127.0.0.1:1/db?sslmode=sometimes\"\n[stages.tune.space]\n\"train.learning_rate\" = { float = [0.001, 0.01] }\n",
            "sslmode=sometimes",
        ),
        pipeline(
            "force-unknown",
            TINY,
            &["--force", "nope"],
            "--force \"nope\"",
        ),
        pipeline(
            "backend-unknown",
            TINY,
            &["--backend", "cuda"],
            "unknown backend 'cuda'",
        ),
        pipeline("seed-not-a-number", TINY, &["--seed", "many"], "--seed"),
        {
            let taken = world().root.join("user/taken");
            let dir = case_dir("out-is-a-file");
            let cfg = dir.join("c.toml");
            std::fs::write(&cfg, TINY).unwrap();
            case(
                "out-is-a-file",
                &["pipeline", "--config", &s(&cfg), "--out", &s(&taken)],
                "is an existing file",
            )
        },
    ]
}

fn data_cases() -> Vec<Case> {
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

fn model_cases() -> Vec<Case> {
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

fn command_cases() -> Vec<Case> {
    let w = world();
    let float = s(&w.float_model);
    let mut cases = vec![
        {
            // A web app's public/ folder holds a manifest.json: never deleted or overwritten.
            let public = w.root.join("user/public");
            case(
                "export-over-web-app",
                &[
                    "export",
                    "--model",
                    &float,
                    "--format",
                    "onnx",
                    "--out",
                    &s(&public),
                ],
                "not an optkit bundle",
            )
        },
        case(
            "export-into-model",
            &[
                "export", "--model", &float, "--format", "onnx", "--out", &float,
            ],
            "not an optkit bundle",
        ),
        case(
            "export-onto-file",
            &[
                "export",
                "--model",
                &float,
                "--format",
                "onnx",
                "--out",
                &s(w.root.join("user/taken")),
            ],
            "existing file",
        ),
        case(
            "export-format",
            &[
                "export", "--model", &float, "--format", "tflite", "--out", "x",
            ],
            "'tflite'",
        ),
        {
            let out = case_dir("export-int8-safetensors").join("bundle");
            let mut c = case(
                "export-int8-safetensors",
                &[
                    "export",
                    "--model",
                    &s(&w.int8_model),
                    "--format",
                    "safetensors",
                    "--out",
                    &s(&out),
                ],
                "safetensors",
            );
            c.cwd = case_dir_keep("export-int8-safetensors");
            c
        },
        {
            let m = model_copy("export-weights-outside", false, |meta| {
                meta["weights"] = "../../../user/notes.txt".into()
            });
            let out = case_dir_keep("export-weights-outside").join("bundle");
            let mut c = case(
                "export-weights-outside",
                &[
                    "export",
                    "--model",
                    &s(&m),
                    "--format",
                    "onnx",
                    "--out",
                    &s(&out),
                ],
                "../../../user/notes.txt",
            );
            c.cwd = case_dir_keep("export-weights-outside");
            c
        },
        case(
            "quantize-onto-source",
            &[
                "quantize",
                "--model",
                &float,
                "--out",
                &float,
                "--backend",
                "flex",
            ],
            "--out is the source model folder",
        ),
        {
            let out = case_dir("quantize-cmd-bits").join("q");
            let mut c = case(
                "quantize-cmd-bits",
                &[
                    "quantize",
                    "--model",
                    &float,
                    "--out",
                    &s(&out),
                    "--bits",
                    "3",
                ],
                "bits",
            );
            c.cwd = case_dir_keep("quantize-cmd-bits");
            c
        },
        {
            let dir = case_dir("prune-onto-source");
            let cfg = dir.join("p.toml");
            std::fs::write(&cfg, "[prune]\ntarget = 0.5\n").unwrap();
            case(
                "prune-onto-source",
                &[
                    "prune",
                    "--model",
                    &float,
                    "--config",
                    &s(&cfg),
                    "--out",
                    &float,
                ],
                "--out is the source model folder",
            )
        },
        case(
            "prune-settings-missing",
            &[
                "prune",
                "--model",
                &float,
                "--config",
                "/no/such/p.toml",
                "--out",
                "x",
            ],
            "/no/such/p.toml",
        ),
        case(
            "distill-onto-teacher",
            &[
                "distill",
                "--student",
                &float,
                "--teacher",
                &float,
                "--out",
                &float,
            ],
            "--out is the --student folder",
        ),
        case(
            "inspect-width-1e15",
            &["inspect", "--arch", "mobilenet_v2", "--width", "1e15"],
            "model.width",
        ),
        case(
            "inspect-input-2-32",
            &["inspect", "--arch", "mlp", "--input-size", "4294967296"],
            "input.height",
        ),
        case(
            "inspect-classes-0",
            &["inspect", "--arch", "mobilenet_v2", "--classes", "0"],
            "data.classes = 0",
        ),
        case(
            "inspect-channels",
            &["inspect", "--arch", "cnn", "--in-channels", "100000"],
            "input.channels",
        ),
        case(
            "inspect-huge-model",
            &[
                "inspect",
                "--arch",
                "efficientnet_b7",
                "--width",
                "16",
                "--input-size",
                "4096",
            ],
            "parameters",
        ),
        case("subcommand-unknown", &["frobnicate"], "frobnicate"),
        {
            let dir = case_dir("tune-no-stage");
            let cfg = dir.join("c.toml");
            std::fs::write(&cfg, TINY).unwrap();
            case(
                "tune-no-stage",
                &["tune", "--config", &s(&cfg)],
                "no tune stage",
            )
        },
        {
            let dir = case_dir("tune-resume-missing");
            let cfg = dir.join("c.toml");
            std::fs::write(
                &cfg,
                format!("{TINY}[[stages]]\nkind = \"tune\"\n[stages.tune.space]\n\"train.learning_rate\" = {{ float = [0.001, 0.01] }}\n"),
            )
            .unwrap();
            let out = dir.join("run");
            let mut c = case(
                "tune-resume-missing",
                &["tune", "--config", &s(&cfg), "--out", &s(&out), "--resume"],
                "--resume: no study named 'tune'",
            );
            c.out = Some(out);
            c.cwd = dir;
            c
        },
    ];
    // A pipeline teacher_model of other classes than the run's data.
    let teacher = model_copy("teacher-other-classes", false, |m| {
        m["spec"]["classes"] = 12.into();
        m["class_names"] = serde_json::json!((0..12).map(|i| i.to_string()).collect::<Vec<_>>());
    });
    let mut c = tiny_plus(
        "teacher-other-classes",
        &format!(
            "[[stages]]\nkind = \"distill\"\nteacher_model = \"{}\"\n",
            s(&teacher)
        ),
        "teacher_model",
    );
    c.cwd = case_dir_keep("teacher-other-classes");
    cases.push(c);
    cases
}

/// SHA-256 of every file under `root` (path → digest), except under `skip`.
fn tree(root: &Path, skip: Option<&Path>) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if skip.is_some_and(|s| dir.starts_with(s)) {
            continue;
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(p);
            } else if !skip.is_some_and(|s| p.starts_with(s)) {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let d: String = Sha256::digest(&bytes)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                out.insert(p, d);
            }
        }
    }
    out
}

/// Runs every case; returns the failures (all of them, not just the first).
fn run(cases: Vec<Case>) -> Vec<String> {
    let root = &world().root;
    let mut failures = Vec::new();
    for c in cases {
        let before = tree(root, c.out.as_deref());
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
            ))
            .arg(env!("CARGO_BIN_EXE_optkit"))
            .args(&c.args)
            .current_dir(&c.cwd)
            .env("RUST_LOG", "off")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap();
        let after = tree(root, c.out.as_deref());
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        let lines: Vec<&str> = stderr.trim().lines().collect();
        let mut why = Vec::new();
        if o.status.code() != Some(2) {
            why.push(format!("exit {:?}", o.status.code()));
        }
        if lines.len() != 1 {
            why.push(format!("{} lines", lines.len()));
        }
        if !stderr.contains(&c.needle) {
            why.push(format!("no {:?}", c.needle));
        }
        if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
            why.push("panic".into());
        }
        if stderr.contains("hunter2") {
            why.push("a password was printed".into());
        }
        if before != after {
            let changed: Vec<_> = before
                .keys()
                .chain(after.keys())
                .filter(|k| before.get(*k) != after.get(*k))
                .collect();
            why.push(format!("files changed outside the run folder: {changed:?}"));
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}: {} | {}",
                c.name,
                why.join(", "),
                stderr.trim()
            ));
        }
    }
    failures
}

/// One test, the groups one after another: the cases share one tree, whose every file is
/// hashed around each case.
#[test]
fn bad_inputs_through_the_release_binary() {
    let groups = [
        ("config", config_cases()),
        ("data", data_cases()),
        ("model folder", model_cases()),
        ("command", command_cases()),
    ];
    let names: Vec<&String> = groups
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| &c.name))
        .collect();
    let distinct: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "case names repeat");
    assert!(names.len() >= 60, "{} cases", names.len());
    let total = names.len();
    let mut failures = Vec::new();
    for (group, cases) in groups {
        for f in run(cases) {
            failures.push(format!("[{group}] {f}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} bad inputs: exit 2, one line naming the file or key, nothing changed");
}
