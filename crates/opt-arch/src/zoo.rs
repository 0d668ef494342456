//! [`ZooArch`]: every architecture optkit knows (opt-core's mlp, lenet5 and cnn plus the
//! MobileNet and EfficientNet families) behind one [`Architecture`], and [`ArchChoice`], what a
//! pipeline's `[model]` section holds: an explicit spec or a family preset.
//!
//! In JSON and TOML both are objects tagged by `arch` with torchvision's family names:
//! `{"arch": "mobilenet_v2", "width": 0.5}` is a preset, `{"arch": "mobilenet_v2", "stem": 16,
//! "stages": [...], ...}` an explicit spec (what `model.json` stores).

use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};
use opt_core::graph::Graph;
use opt_core::model::{Arch, Architecture, Classifier, InputShape, LayerObserver, Model};
use opt_core::{CoreError, Result};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::family::Family;
use crate::nets::{MobileNet, MobileNetV1};
use crate::presets::Preset;
use crate::spec::{MobileNetSpec, MobileNetV1Spec};

/// Names of opt-core's own families.
const CORE_FAMILIES: [&str; 3] = ["mlp", "lenet5", "cnn"];

/// Every family name optkit accepts, comma-separated (for error messages).
pub fn family_names() -> String {
    CORE_FAMILIES
        .iter()
        .map(|s| s.to_string())
        .chain(Family::all().into_iter().map(Family::name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An explicit architecture of any family.
#[derive(Debug, Clone, PartialEq)]
pub enum ZooArch {
    /// opt-core's mlp, lenet5 or cnn.
    Core(Arch),
    /// MobileNetV1.
    MobilenetV1(MobileNetV1Spec),
    /// MobileNetV2, MobileNetV3 or EfficientNet.
    Mobilenet {
        /// Which one (fixes activations and PyTorch names).
        family: Family,
        /// The blocks.
        spec: MobileNetSpec,
    },
}

/// The module a [`ZooArch`] builds.
// Boxing a variant would hide it from burn's Module derive; models are moved rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ZooModel<B: Backend> {
    /// opt-core's families.
    Core(Model<B>),
    /// MobileNetV1.
    MobilenetV1(MobileNetV1<B>),
    /// MobileNetV2, MobileNetV3 and EfficientNet.
    Mobilenet(MobileNet<B>),
}

impl<B: Backend> Classifier<B> for ZooModel<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        match self {
            ZooModel::Core(m) => m.forward_observed(images, obs),
            ZooModel::MobilenetV1(m) => m.forward_observed(images, obs),
            ZooModel::Mobilenet(m) => m.forward_observed(images, obs),
        }
    }
}

impl Architecture for ZooArch {
    type Model<B: Backend> = ZooModel<B>;

    fn family(&self) -> String {
        match self {
            ZooArch::Core(a) => a.family(),
            ZooArch::MobilenetV1(_) => Family::MobilenetV1.name(),
            ZooArch::Mobilenet { family, .. } => family.name(),
        }
    }

    fn describe(&self) -> String {
        match self {
            ZooArch::Core(a) => a.describe(),
            ZooArch::MobilenetV1(s) => format!(
                "mobilenet_v1 stem={} blocks={} last={}",
                s.stem,
                s.blocks.len(),
                s.blocks.last().map_or(s.stem, |b| b.out)
            ),
            ZooArch::Mobilenet { family, spec } => format!(
                "{} stem={}/s{} blocks={} head={} total_stride={}",
                family.name(),
                spec.stem,
                spec.stem_stride,
                spec.blocks().len(),
                spec.head,
                spec.total_stride()
            ),
        }
    }

    fn validate(&self, input: InputShape, classes: usize) -> Result<()> {
        match self {
            ZooArch::Core(a) => a.validate(input, classes),
            ZooArch::MobilenetV1(s) => s.validate(input),
            ZooArch::Mobilenet { family, spec } => spec.validate(input, &family.name()),
        }
    }

    fn graph(&self, input: InputShape, classes: usize) -> Graph {
        match self {
            ZooArch::Core(a) => a.graph(input, classes),
            ZooArch::MobilenetV1(s) => s.lower(input, classes),
            ZooArch::Mobilenet { family, spec } => spec.lower(*family, input, classes),
        }
    }

    fn build<B: Backend>(
        &self,
        input: InputShape,
        classes: usize,
        device: &B::Device,
    ) -> ZooModel<B> {
        match self {
            ZooArch::Core(a) => ZooModel::Core(a.build(input, classes, device)),
            ZooArch::MobilenetV1(s) => ZooModel::MobilenetV1(s.build(input, classes, device)),
            ZooArch::Mobilenet { family, spec } => {
                ZooModel::Mobilenet(spec.build(*family, input, classes, device))
            }
        }
    }

    fn with_group_widths(
        &self,
        input: InputShape,
        classes: usize,
        widths: &[usize],
    ) -> Result<Self> {
        let groups = || self.graph(input, classes).channel_groups();
        Ok(match self {
            ZooArch::Core(a) => ZooArch::Core(a.with_group_widths(input, classes, widths)?),
            ZooArch::MobilenetV1(s) => {
                ZooArch::MobilenetV1(s.with_group_widths(&groups()?, widths)?)
            }
            ZooArch::Mobilenet { family, spec } => ZooArch::Mobilenet {
                family: *family,
                spec: spec.with_group_widths(&groups()?, widths)?,
            },
        })
    }
}

impl Serialize for ZooArch {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let tagged = |family: Family, value: std::result::Result<Value, serde_json::Error>| {
            let mut map = serde_json::Map::new();
            map.insert("arch".into(), Value::String(family.name()));
            match value.map_err(S::Error::custom)? {
                Value::Object(fields) => map.extend(fields),
                other => {
                    return Err(S::Error::custom(format!(
                        "a spec must be an object, got {other}"
                    )));
                }
            }
            Ok(Value::Object(map))
        };
        match self {
            ZooArch::Core(a) => a.serialize(s),
            ZooArch::MobilenetV1(spec) => {
                tagged(Family::MobilenetV1, serde_json::to_value(spec))?.serialize(s)
            }
            ZooArch::Mobilenet { family, spec } => {
                tagged(*family, serde_json::to_value(spec))?.serialize(s)
            }
        }
    }
}

/// Splits `{"arch": name, ...}` into the name and the other fields.
fn untag(value: Value) -> std::result::Result<(String, Value), String> {
    let Value::Object(mut map) = value else {
        return Err("a model architecture must be a table with an `arch` key".into());
    };
    match map.remove("arch") {
        Some(Value::String(name)) => Ok((name, Value::Object(map))),
        Some(other) => Err(format!("`arch` must be a family name, got {other}")),
        None => Err(format!("missing `arch`; use one of {}", family_names())),
    }
}

fn unknown_family(name: &str) -> String {
    format!(
        "unknown architecture `{name}`; use one of {}",
        family_names()
    )
}

impl ZooArch {
    fn from_value(value: Value) -> std::result::Result<Self, String> {
        let (name, fields) = untag(value.clone())?;
        if CORE_FAMILIES.contains(&name.as_str()) {
            return Arch::deserialize(value)
                .map(ZooArch::Core)
                .map_err(|e| e.to_string());
        }
        let family = Family::parse(&name).ok_or_else(|| unknown_family(&name))?;
        let err = |e: serde_json::Error| format!("{name}: {e}");
        if family == Family::MobilenetV1 {
            MobileNetV1Spec::deserialize(fields)
                .map(ZooArch::MobilenetV1)
                .map_err(err)
        } else {
            MobileNetSpec::deserialize(fields)
                .map(|spec| ZooArch::Mobilenet { family, spec })
                .map_err(err)
        }
    }
}

impl<'de> Deserialize<'de> for ZooArch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        ZooArch::from_value(Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// The knobs of a preset in a config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetFields {
    #[serde(default = "one")]
    width: f64,
    small_input: Option<bool>,
    dropout: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// What a config's `[model]` section names: an explicit spec, or a family with its knobs.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchChoice {
    /// Every width written out (opt-core's families, or a MobileNet/EfficientNet spec with
    /// `stages`/`blocks`).
    Explicit(ZooArch),
    /// A MobileNet or EfficientNet family with `width`, `small_input` and `dropout`.
    Preset(Preset),
}

impl ArchChoice {
    /// The explicit architecture for images of shape `input`.
    pub fn resolve(&self, input: InputShape) -> Result<ZooArch> {
        match self {
            ArchChoice::Explicit(a) => Ok(a.clone()),
            ArchChoice::Preset(p) => p.build(input),
        }
    }

    /// The family name.
    pub fn family(&self) -> String {
        match self {
            ArchChoice::Explicit(a) => a.family(),
            ArchChoice::Preset(p) => p.family.name(),
        }
    }

    /// The preset of a family name (`mobilenet_v2`), or opt-core's spec with default widths.
    pub fn named(name: &str) -> Result<Self> {
        if let Some(family) = Family::parse(name) {
            return Ok(ArchChoice::Preset(Preset::new(family)));
        }
        let value = serde_json::json!({ "arch": name });
        ZooArch::from_value(value)
            .map(ArchChoice::Explicit)
            .map_err(|_| CoreError::invalid("arch", name, unknown_family(name)))
    }
}

impl<'de> Deserialize<'de> for ArchChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let (name, fields) = untag(value.clone()).map_err(D::Error::custom)?;
        let explicit = fields
            .as_object()
            .is_some_and(|m| m.contains_key("stages") || m.contains_key("blocks"));
        match Family::parse(&name) {
            Some(family) if !explicit => {
                let f = PresetFields::deserialize(fields)
                    .map_err(|e| D::Error::custom(format!("{name}: {e}")))?;
                Ok(ArchChoice::Preset(Preset {
                    family,
                    width: f.width,
                    small_input: f.small_input,
                    dropout: f.dropout,
                }))
            }
            _ => ZooArch::from_value(value)
                .map(ArchChoice::Explicit)
                .map_err(D::Error::custom),
        }
    }
}

impl Serialize for ArchChoice {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            ArchChoice::Explicit(a) => a.serialize(s),
            ArchChoice::Preset(p) => {
                let mut map = serde_json::Map::new();
                map.insert("arch".into(), Value::String(p.family.name()));
                map.insert("width".into(), serde_json::json!(p.width));
                if let Some(v) = p.small_input {
                    map.insert("small_input".into(), Value::Bool(v));
                }
                if let Some(v) = p.dropout {
                    map.insert("dropout".into(), serde_json::json!(v));
                }
                Value::Object(map).serialize(s)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };

    #[test]
    fn presets_and_explicit_specs_parse_and_round_trip() {
        let choice: ArchChoice =
            serde_json::from_str(r#"{"arch": "mobilenet_v2", "width": 0.5}"#).unwrap();
        let arch = choice.resolve(MNIST).unwrap();
        let ZooArch::Mobilenet { spec, .. } = &arch else {
            panic!("{arch:?}")
        };
        assert_eq!(
            (spec.stem, spec.stem_stride, spec.total_stride()),
            (16, 1, 8)
        );
        // The explicit form (what model.json stores) reads back as itself, as a spec and as a
        // choice.
        let json = serde_json::to_string(&arch).unwrap();
        assert!(json.contains("\"arch\":\"mobilenet_v2\""), "{json}");
        assert_eq!(serde_json::from_str::<ZooArch>(&json).unwrap(), arch);
        assert_eq!(
            serde_json::from_str::<ArchChoice>(&json).unwrap(),
            ArchChoice::Explicit(arch)
        );
        let core: ArchChoice = serde_json::from_str(r#"{"arch": "lenet5"}"#).unwrap();
        assert_eq!(core.family(), "lenet5");
        let again: ArchChoice =
            serde_json::from_str(&serde_json::to_string(&choice).unwrap()).unwrap();
        assert_eq!(again, choice);
    }

    #[test]
    fn bad_choices_say_what_is_wrong() {
        let err = |s: &str| {
            serde_json::from_str::<ArchChoice>(s)
                .unwrap_err()
                .to_string()
        };
        let e = err(r#"{"arch": "resnet50"}"#);
        assert!(
            e.contains("unknown architecture `resnet50`") && e.contains("efficientnet_b7"),
            "{e}"
        );
        let e = err(r#"{"arch": "mobilenet_v2", "widht": 0.5}"#);
        assert!(e.contains("unknown field `widht`"), "{e}");
        let e = err(r#"{"width": 0.5}"#);
        assert!(e.contains("missing `arch`"), "{e}");
        let e = ArchChoice::named("vgg").unwrap_err().to_string();
        assert!(e.contains("unknown architecture `vgg`"), "{e}");
        for w in [0.0, -1.0, f64::NAN] {
            let p = Preset {
                width: w,
                ..Preset::new(Family::MobilenetV3Small)
            };
            let e = p.build(MNIST).unwrap_err().to_string();
            assert!(e.contains("model.width"), "{e}");
        }
    }

    #[test]
    fn input_smaller_than_the_total_stride_is_an_error() {
        let input = InputShape {
            channels: 3,
            height: 16,
            width: 16,
        };
        let p = Preset {
            small_input: Some(false),
            ..Preset::new(Family::Efficientnet(0))
        };
        let spec = opt_core::model::ModelSpec {
            input,
            classes: 10,
            arch: p.build(input).unwrap(),
        };
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("total stride 32") && e.contains("16x16"), "{e}");
        let mut zero = spec.clone();
        zero.classes = 0;
        assert!(
            zero.validate()
                .unwrap_err()
                .to_string()
                .contains("data.classes")
        );
        let ZooArch::Mobilenet { mut spec, family } = spec.arch else {
            unreachable!()
        };
        spec.stages[1][1].residual = false;
        spec.stages[1][0].residual = true;
        let e = ZooArch::Mobilenet { family, spec }
            .validate(MNIST, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.stages[1][0].residual"), "{e}");
    }
}
