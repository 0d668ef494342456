//! Commands given folders they must not write over or read from, and bad flags.

use super::*;

pub(super) fn cases() -> Vec<Case> {
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
