//! Export and deployment: the ONNX files run in onnxruntime (PyPI) and give our outputs (float:
//! logits within 1e-4; int8 QDQ: the same top-1 accuracy within 0.2 points on the 2,000
//! embedded test images), the safetensors and burn files hold the same weights, the bundle is
//! checked against its manifest, and bad input is refused with the files kept.
//!
//! onnxruntime comes from `OPTKIT_PYTHON` (a Python with `onnxruntime` and `numpy`) or from a
//! virtual environment this test creates once under cargo's target directory with
//! `scripts/requirements-onnx.txt` (PyPI).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use burn::module::Module;
use burn_store::{BurnpackStore, ModuleSnapshot};
use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::load_model;
use opt_core::data::{DataSource, ImageDataset};
use opt_core::model::Classifier;
use opt_export::{Deployed, open_bundle};
use optkit_tests::{TempDir, optkit, pipeline, read_json, tiny_config};

type B = burn_flex::Flex;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Python that imports onnxruntime and numpy.
fn python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("OPTKIT_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnxruntime-venv");
        let py = venv.join("bin/python");
        let ok = |py: &Path| {
            Command::new(py)
                .args(["-c", "import onnxruntime, numpy"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&py) {
            let run = |cmd: &mut Command| {
                let s = cmd
                    .status()
                    .expect("run python3 (install CPython 3 with venv)");
                assert!(s.success(), "{cmd:?} failed");
            };
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
            run(Command::new(&py)
                .args(["-m", "pip", "install", "-q", "-r"])
                .arg(repo().join("scripts/requirements-onnx.txt")));
        }
        assert!(ok(&py), "{} cannot import onnxruntime", py.display());
        py
    })
}

/// Runs `onnx` in onnxruntime on `x` (`n` images of `shape`), returning its logits and what
/// the script printed.
fn onnxruntime(onnx: &Path, x: &[f32], n: usize, shape: [usize; 3]) -> (Vec<f32>, String) {
    let tmp = TempDir::new("ort");
    let inp = tmp.write(
        "x.f32",
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    );
    let out = tmp.path().join("y.f32");
    let o = Command::new(python())
        .arg(repo().join("scripts/onnx_run.py"))
        .arg(onnx)
        .arg(&inp)
        .args([n, shape[0], shape[1], shape[2]].map(|d| d.to_string()))
        .arg(&out)
        .output()
        .expect("run onnx_run.py");
    assert!(
        o.status.success(),
        "onnxruntime failed on {}: {}",
        onnx.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let y = std::fs::read(&out)
        .unwrap()
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (y, String::from_utf8_lossy(&o.stdout).into_owned())
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |a, (i, &v)| if v > a.1 { (i, v) } else { a },
        )
        .0
}

fn accuracy(logits: &[f32], classes: usize, labels: &[u8]) -> f64 {
    let right = logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, l)| argmax(row) == **l as usize)
        .count();
    right as f64 / labels.len() as f64
}

fn pixels(ds: &ImageDataset) -> Vec<u8> {
    (0..ds.len()).flat_map(|i| ds.image(i).to_vec()).collect()
}

/// A baseline and an int8 candidate of the tiny CNN (batch norms, three conv layers' worth of
/// folding and requantization), trained on the embedded subset.
fn trained_run(dir: &TempDir) -> PathBuf {
    let out = dir.path().join("run");
    let extra = r#"
[[stages]]
kind = "quantize"
name = "int8"
[stages.quantize]
method = "ptq"
bits = 8
calibration = { method = "min_max", samples = 256 }
[deploy]
candidate = "int8"
formats = ["onnx"]
path = "bundle"
"#;
    let o = pipeline(tiny_config(&out, extra));
    assert_eq!(o.code, 0, "{}", o.stderr);
    out
}

#[test]
fn onnx_exports_run_in_onnxruntime_with_our_outputs() {
    let dir = TempDir::new("export");
    let run = trained_run(&dir);
    let test = DataSource::Embedded.load(10).unwrap().test;
    let n = test.len();
    assert_eq!(n, 2000);
    let px = pixels(&test);
    let shape = [1, 28, 28];

    // Float: every logit within 1e-4 of burn's.
    let float = dir.path().join("float");
    let o = optkit(&[
        "export",
        "--model",
        run.join("baseline").to_str().unwrap(),
        "--format",
        "onnx,safetensors,burn",
        "--out",
        float.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let ours = Deployed::<B>::load(&float, &Default::default()).unwrap();
    let norm = &ours.manifest.input.normalization;
    let x: Vec<f32> = px
        .iter()
        .map(|&p| (p as f32 / 255.0 - norm.mean) / norm.std)
        .collect();
    let want = ours.logits(&px, n);
    let (got, info) = onnxruntime(&float.join("model.onnx"), &x, n, shape);
    assert_eq!(got.len(), want.len(), "{info}");
    let max_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("float ONNX: max |logit difference| {max_diff:.2e} over {n} images ({info})");
    assert!(max_diff < 1e-4, "max difference {max_diff}");
    assert!(info.contains("\"optkit.kind\": \"float32\""), "{info}");

    // int8 QDQ (the [deploy] bundle): the same top-1 accuracy within 0.2 points.
    let bundle = run.join("bundle");
    let manifest = open_bundle(&bundle).unwrap();
    assert_eq!(
        (manifest.kind.as_str(), manifest.name.as_str()),
        ("int8", "int8")
    );
    let q = Deployed::<B>::load(&bundle, &Default::default()).unwrap();
    let want = q.logits(&px, n);
    let (got, info) = onnxruntime(&bundle.join("model.onnx"), &x, n, shape);
    let (a_ours, a_ort) = (
        accuracy(&want, 10, &test.labels),
        accuracy(&got, 10, &test.labels),
    );
    let agree = want
        .chunks(10)
        .zip(got.chunks(10))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    eprintln!(
        "int8 QDQ ONNX: accuracy {a_ort:.4} in onnxruntime vs {a_ours:.4} on optkit's integer \
         path, top-1 agreement {agree}/{n} ({info})"
    );
    assert!((a_ours - a_ort).abs() <= 0.002, "{a_ours} vs {a_ort}");
    assert!(agree as f64 >= 0.99 * n as f64, "{agree} of {n}");
    let report = read_json(&run.join("report.json"));
    assert_eq!(report["deployed"]["candidate"], "int8");
    assert_eq!(report["deployed"]["path"], "bundle");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("id=\"deployed\"") && html.contains("model.onnx"));
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("## Deployment") && md.contains("`model.int8`"),
        "{md}"
    );
}

#[test]
fn safetensors_and_burn_exports_hold_the_model() {
    let dir = TempDir::new("export-files");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(&out, ""));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let bundle = dir.path().join("b");
    let o = optkit(&[
        "export",
        "--model",
        out.join("baseline").to_str().unwrap(),
        "--format",
        "safetensors",
        "--format",
        "burn",
        "--out",
        bundle.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let device = Default::default();
    let (meta, model, _) = load_model::<B, ZooArch>(&out.join("baseline"), &device).unwrap();
    let x = burn::tensor::Tensor::<B, 4>::random(
        [4, 1, 28, 28],
        burn::tensor::Distribution::Default,
        &device,
    );
    let want = model
        .forward(x.clone())
        .into_data()
        .to_vec::<f32>()
        .unwrap();

    // burn: the Burnpack file loads into a fresh module of the spec with the same outputs.
    let mut fresh: ZooModel<B> = meta.spec.init(&device);
    let mut store = BurnpackStore::from_file(bundle.join("model.bpk"));
    let applied = fresh.load_from(&mut store).unwrap();
    assert!(
        applied.errors.is_empty() && applied.missing.is_empty(),
        "{applied:?}"
    );
    let got = fresh.forward(x).into_data().to_vec::<f32>().unwrap();
    assert_eq!(got, want);
    assert_eq!(fresh.num_params(), model.num_params());

    // safetensors: PyTorch names and layouts (linear weights [out, in], batch-norm weight/bias).
    let bytes = std::fs::read(bundle.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let head = st.tensor("head.weight").unwrap();
    assert_eq!(head.shape(), [10, 16]);
    assert!(
        st.tensor("blocks.0.bn.weight").is_ok() && st.tensor("blocks.0.bn.running_var").is_ok()
    );
    assert!(
        st.names()
            .iter()
            .all(|n| !n.ends_with("gamma") && !n.ends_with("beta"))
    );
    let manifest = open_bundle(&bundle).unwrap();
    let names: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "model.json",
            "weights.safetensors",
            "model.safetensors",
            "model.bpk"
        ]
    );
}

#[test]
fn bad_exports_are_refused_and_nothing_is_lost() {
    let dir = TempDir::new("export-bad");
    let out = dir.path().join("run");
    let o = pipeline(tiny_config(
        &out,
        "[[stages]]\nkind = \"quantize\"\nname = \"int8\"\n",
    ));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    let export = |model: &Path, format: &str, dest: &Path| {
        optkit(&[
            "export",
            "--model",
            &arg(model),
            "--format",
            format,
            "--out",
            &arg(dest),
        ])
    };
    // A format that cannot hold the int8 model.
    let o = export(&out.join("int8"), "safetensors", &dir.path().join("x"));
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("cannot export") && o.stderr.contains("--format onnx"),
        "{}",
        o.stderr
    );
    assert!(!dir.path().join("x").exists());
    // An unknown format.
    let o = export(&out.join("baseline"), "tflite", &dir.path().join("x"));
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("'tflite'"), "{}", o.stderr);
    // A folder that is not a bundle is not overwritten.
    let keep = dir.path().join("mine");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("notes.txt"), "mine").unwrap();
    let o = export(&out.join("baseline"), "onnx", &keep);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("not an optkit bundle"), "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(keep.join("notes.txt")).unwrap(),
        "mine"
    );
    // A bundle whose file was changed is refused by name.
    let b = dir.path().join("b");
    assert_eq!(export(&out.join("int8"), "onnx", &b).code, 0);
    assert_eq!(
        export(&out.join("int8"), "onnx", &b).code,
        0,
        "a bundle is replaced"
    );
    std::fs::write(b.join("model.onnx"), b"changed").unwrap();
    let err = open_bundle(&b).unwrap_err().to_string();
    assert!(
        err.contains("model.onnx does not match the manifest"),
        "{err}"
    );
    // A deploy path outside the output folder is refused before anything runs.
    let out2 = dir.path().join("run2");
    let o = pipeline(tiny_config(
        &out2,
        "[deploy]\npath = \"../elsewhere\"\nformats = [\"onnx\"]\n",
    ));
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.contains("inside the run's output folder"),
        "{}",
        o.stderr
    );
    assert!(!out2.exists() && !dir.path().join("elsewhere").exists());
}
