//! The example program on a real bundle: an IDX file and a PNG of the same image give the same
//! answer as the bundle's model, and a damaged bundle is refused.

use std::path::Path;
use std::process::Command;

use opt_arch::{ZooArch, ZooModel};
use opt_core::artifact::{FORMAT_VERSION, ModelMeta, WEIGHTS_FILE, save_model};
use opt_core::data::Normalization;
use opt_core::data::idx::{IMAGES_MAGIC, encode_idx};
use opt_core::model::{InputShape, ModelSpec};
use opt_export::{Deployed, ExportFormat, write_bundle};

type B = burn_flex::Flex;

fn classify(args: &[&Path]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_classify"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(if o.status.success() {
        &o.stdout
    } else {
        &o.stderr
    });
    (o.status.success(), text.into_owned())
}

#[test]
fn the_example_classifies_idx_and_png_images_from_a_bundle() {
    let tmp = std::env::temp_dir().join(format!("optkit-classify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let input = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let core = ModelSpec::preset("lenet5", input, 10).unwrap();
    let spec = ModelSpec {
        input,
        classes: 10,
        arch: ZooArch::Core(core.arch),
    };
    let device = Default::default();
    let model: ZooModel<B> = spec.init(&device);
    let meta = ModelMeta {
        format_version: FORMAT_VERSION,
        spec,
        normalization: Normalization {
            mean: 0.29,
            std: 0.35,
        },
        class_names: (0..10).map(|i| format!("class-{i}")).collect(),
        weights: WEIGHTS_FILE.into(),
        test_data: None,
    };
    save_model::<B, ZooArch>(&tmp.join("model"), &meta, &model).unwrap();
    let bundle = tmp.join("bundle");
    write_bundle::<B>(
        &tmp.join("model"),
        &bundle,
        &[ExportFormat::Onnx],
        "lenet5",
        &device,
    )
    .unwrap();

    // Three images; the example reads the one at index 2.
    let pixels: Vec<u8> = (0..3 * 784).map(|i| ((i * 37) % 256) as u8).collect();
    let idx = tmp.join("images.idx");
    std::fs::write(&idx, encode_idx(IMAGES_MAGIC, &[3, 28, 28], &pixels)).unwrap();
    let image = &pixels[2 * 784..];
    let want = &Deployed::<B>::load(&bundle, &device)
        .unwrap()
        .classify(image, 1)[0];
    let line = format!("class {} ({})", want.class, want.name);
    let idx_index = Path::new("2");
    let (ok, out) = classify(&[&bundle, &idx, idx_index]);
    assert!(ok && out.contains(&line), "{out} (want {line})");

    let png_path = tmp.join("image.png");
    let file = std::fs::File::create(&png_path).unwrap();
    let mut enc = png::Encoder::new(file, 28, 28);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(image).unwrap();
    let (ok, out) = classify(&[&bundle, &png_path]);
    assert!(ok && out.contains(&line), "{out} (want {line})");

    // An index past the end, and a bundle whose weights were changed, are refused by name.
    let (ok, out) = classify(&[&bundle, &idx, Path::new("3")]);
    assert!(
        !ok && out.contains("index 3 is past the last image"),
        "{out}"
    );
    std::fs::write(bundle.join(WEIGHTS_FILE), b"damaged").unwrap();
    let (ok, out) = classify(&[&bundle, &png_path]);
    assert!(
        !ok && out.contains("weights.safetensors does not match the manifest"),
        "{out}"
    );

    // Manifests that would read outside the bundle, verify nothing, or panic the classifier
    // are refused by name (the bundle's files are fine again).
    write_bundle::<B>(
        &tmp.join("model"),
        &bundle,
        &[ExportFormat::Onnx],
        "lenet5",
        &device,
    )
    .unwrap();
    let manifest_path = bundle.join("manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let hostname = serde_json::json!({
        "path": "/etc/hostname", "role": "x", "bytes": 1, "sha256": "00"
    });
    type Tamper = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Tamper, &str)> = vec![
        (
            Box::new(move |m| m["files"].as_array_mut().unwrap().push(hostname.clone())),
            "plain file names",
        ),
        (
            Box::new(|m| m["files"] = serde_json::json!([])),
            "does not list model.json",
        ),
        (
            Box::new(|m| {
                let files = m["files"].as_array_mut().unwrap();
                files.retain(|f| f["path"] != WEIGHTS_FILE);
            }),
            "which the manifest does not list",
        ),
        (
            Box::new(|m| m["output"]["classes"] = 0.into()),
            "at least 2 classes",
        ),
    ];
    for (tamper, needle) in cases {
        let mut m = manifest.clone();
        tamper(&mut m);
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
        let (ok, out) = classify(&[&bundle, &png_path]);
        assert!(!ok && out.contains(needle), "{needle}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
