//! Tests of the pipeline file: parsing, validation and the shipped recipes.

use super::*;
use opt_core::model::InputShape;

const MIN: &str = "version = 1\n[model]\narch = \"cnn\"\n[[stages]]\nkind = \"baseline\"\n";

#[test]
fn minimal_file_gets_defaults() {
    let f = parse(MIN).unwrap();
    assert_eq!(
        f.model,
        opt_arch::ArchChoice::Explicit(opt_arch::ZooArch::Core(opt_core::model::Arch::Cnn {
            blocks: vec![16, 32, 64],
            fc: 128
        }))
    );
    assert_eq!(f.train, TrainConfig::default());
    assert_eq!(f.data.classes, 10);
}

#[test]
fn unknown_keys_name_their_path() {
    let e = parse(&format!("{MIN}[train]\nepoch = 3\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.epoch") && e.contains("unknown field"),
        "{e}"
    );
    let e = parse(
        "version = 1\n[model]\narch = \"lenet5\"\nconv3 = 4\n[[stages]]\nkind = \"baseline\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("conv3"), "{e}");
    let e = parse(&format!("{MIN}[train]\nepochs = \"three\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.epochs") && e.contains("line 7"), "{e}");
    let e = parse(&MIN.replace("baseline", "bogus"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("stages") && e.contains("baseline"), "{e}");
}

#[test]
fn validation_rejects_ranges_with_keys() {
    for (extra, expect) in [
        ("[train]\nepochs = 0\n", "train.epochs = 0"),
        (
            "[train]\nlearning_rate = -0.1\n",
            "train.learning_rate = -0.1",
        ),
        ("[train]\nbatch_size = 0\n", "train.batch_size = 0"),
        (
            "[data]\nvalidation_split = 1.0\n",
            "data.validation_split = 1",
        ),
        ("[data]\nsource = \"dir\"\n", "needs data.path"),
    ] {
        let f = parse(&format!("{MIN}{extra}")).unwrap();
        let e = format!(
            "{:#}",
            validate(Path::new("c.toml"), f, Overrides::default()).unwrap_err()
        );
        assert!(e.contains(expect), "{e}");
    }
}

#[test]
fn data_dir_override_wins_and_relative_paths_follow_the_config() {
    let f = parse(&format!(
        "{MIN}[data]\nsource = \"dir\"\npath = \"../data\"\n"
    ))
    .unwrap();
    let p = validate(Path::new("configs/x.toml"), f.clone(), Overrides::default()).unwrap();
    // Recorded absolute, so it names the same files from any working directory.
    assert_eq!(
        p.source,
        DataSource::Dir {
            path: std::path::absolute("configs/../data").unwrap()
        }
    );
    let ov = Overrides {
        data_dir: Some("/d".into()),
        ..Default::default()
    };
    let p = validate(Path::new("configs/x.toml"), f, ov).unwrap();
    assert_eq!(
        p.source,
        DataSource::Dir {
            path: PathBuf::from("/d")
        }
    );
}

/// Every shipped recipe parses and validates, and each stage's model resolves to a valid
/// spec for 28x28 grayscale images.
#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let p = load(&path, Overrides::default()).unwrap();
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        p.stage_specs(input).unwrap();
        seen += 1;
    }
    assert!(seen >= 4, "{seen} configs");
}

#[test]
fn tune_trial_steps_are_checked() {
    let tune = |extra: &str| {
        format!(
            "{MIN}[[stages]]\nkind = \"tune\"\n{extra}\n[stages.tune]\nspace = {{ \"prune.target\" = {{ float = [0.3, 0.8] }} }}\n"
        )
    };
    let err = |text: String| {
        let f = parse(&text).unwrap();
        format!(
            "{:#}",
            validate(Path::new("c.toml"), f, Overrides::default()).unwrap_err()
        )
    };
    // A valid chain: prune then quantize, from the baseline; its source and specs resolve.
    let ok = tune(
        "from = \"baseline\"\n[[stages.trial]]\nkind = \"prune\"\n[[stages.trial]]\nkind = \"quantize\"",
    );
    let p = validate(
        Path::new("c.toml"),
        parse(&ok).unwrap(),
        Overrides::default(),
    )
    .unwrap();
    assert_eq!(p.source_of(1).unwrap(), 0);
    assert!(p.runs_steps(1));
    let input = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    assert_eq!(p.stage_specs(input).unwrap().len(), 2);
    for (extra, want) in [
        (
            "[[stages.trial]]\nkind = \"baseline\"",
            "trial[0].kind = \"baseline\"",
        ),
        (
            "[[stages.trial]]\nkind = \"prune\"\nname = \"p\"",
            "trial[0]: a trial step has no `name` or `from`",
        ),
        (
            "[[stages.trial]]\nkind = \"prune\"\n[[stages.trial]]\nkind = \"prune\"",
            "trial[1].kind = \"prune\": a trial runs at most one prune step",
        ),
        (
            "from = \"baseline\"",
            "stages[1].from is set but the stage has no [[stages.trial]]",
        ),
        (
            "[[stages.trial]]\nkind = \"prune\"\n[[stages.trial]]\nkind = \"distill\"\nstudent = { arch = \"mlp\" }",
            "trial[1].student: a fresh student can only be the first step",
        ),
        (
            "from = \"nope\"\n[[stages.trial]]\nkind = \"prune\"",
            "stages[1].from = \"nope\": no earlier stage",
        ),
    ] {
        let e = err(tune(extra));
        assert!(e.contains(want), "{extra}: {e}");
    }
    let es = ok.replace(
        "[stages.tune]\n",
        "[stages.tune]\nearly_stopping = { kind = \"median\" }\n",
    );
    let e = err(es);
    assert!(
        e.contains("early_stopping.kind = \"median\": early stopping needs"),
        "{e}"
    );
    // Dimensions are checked against the steps before anything runs.
    let bad = ok.replace("[0.3, 0.8]", "[0.3, 1.5]");
    let p = validate(
        Path::new("c.toml"),
        parse(&bad).unwrap(),
        Overrides::default(),
    )
    .unwrap();
    let e = format!("{:#}", p.stage_specs(input).unwrap_err());
    assert!(e.contains("space.\"prune.target\" = 1.5"), "{e}");
}
