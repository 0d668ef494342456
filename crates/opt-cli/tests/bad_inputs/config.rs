//! Broken and crafted pipeline files and flags: TOML, ranges, stage graphs, tune spaces,
//! storages, deployment paths.

use super::*;

pub(super) fn cases() -> Vec<Case> {
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
