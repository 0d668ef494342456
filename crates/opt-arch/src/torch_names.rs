//! PyTorch module names of every layer, so PyTorch state dicts (torchvision's MobileNetV2,
//! MobileNetV3 and EfficientNet, or timm ports with the same names) load into our modules and
//! ours save as theirs. MobileNetV1 is not in torchvision; it gets names in the same style:
//! `features.0` the stem, `features.{i}.{0,1}` a block's depthwise convolution and batch norm,
//! `features.{i}.{3,4}` its pointwise ones, `classifier.1` the linear layer.

use crate::family::Family;
use crate::zoo::ZooArch;

/// Our module path -> PyTorch module path for every layer with parameters; `None` for opt-core's
/// families (their names are already PyTorch-style).
pub fn torch_modules(arch: &ZooArch) -> Option<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    fn unit(out: &mut Vec<(String, String)>, ours: &str, theirs: &str) {
        out.push((format!("{ours}.conv"), format!("{theirs}.0")));
        out.push((format!("{ours}.bn"), format!("{theirs}.1")));
    }
    match arch {
        ZooArch::Core(_) => return None,
        ZooArch::MobilenetV1(spec) => {
            unit(&mut out, "stem", "features.0");
            for i in 0..spec.blocks.len() {
                let t = format!("features.{}", i + 1);
                out.push((format!("blocks.{i}.depthwise.conv"), format!("{t}.0")));
                out.push((format!("blocks.{i}.depthwise.bn"), format!("{t}.1")));
                out.push((format!("blocks.{i}.pointwise.conv"), format!("{t}.3")));
                out.push((format!("blocks.{i}.pointwise.bn"), format!("{t}.4")));
            }
            out.push(("classifier".into(), "classifier.1".into()));
        }
        ZooArch::Mobilenet { family, spec } => {
            unit(&mut out, "stem", "features.0");
            let mut i = 0;
            for (s, stage) in spec.stages.iter().enumerate() {
                for (j, b) in stage.iter().enumerate() {
                    let ours = format!("blocks.{i}");
                    i += 1;
                    match family {
                        Family::MobilenetV2 => {
                            let t = format!("features.{i}.conv");
                            let mut k = 0;
                            if b.expanded.is_some() {
                                unit(&mut out, &format!("{ours}.expand"), &format!("{t}.0"));
                                k = 1;
                            }
                            unit(&mut out, &format!("{ours}.depthwise"), &format!("{t}.{k}"));
                            out.push((format!("{ours}.project.conv"), format!("{t}.{}", k + 1)));
                            out.push((format!("{ours}.project.bn"), format!("{t}.{}", k + 2)));
                        }
                        _ => {
                            let t = match family {
                                Family::Efficientnet(_) => format!("features.{}.{j}.block", s + 1),
                                _ => format!("features.{i}.block"),
                            };
                            let mut k = 0;
                            if b.expanded.is_some() {
                                unit(&mut out, &format!("{ours}.expand"), &format!("{t}.{k}"));
                                k += 1;
                            }
                            unit(&mut out, &format!("{ours}.depthwise"), &format!("{t}.{k}"));
                            k += 1;
                            if b.se.is_some() {
                                out.push((format!("{ours}.se.fc1"), format!("{t}.{k}.fc1")));
                                out.push((format!("{ours}.se.fc2"), format!("{t}.{k}.fc2")));
                                k += 1;
                            }
                            unit(&mut out, &format!("{ours}.project"), &format!("{t}.{k}"));
                        }
                    }
                }
            }
            let head = match family {
                Family::Efficientnet(_) => spec.stages.len() + 1,
                _ => i + 1,
            };
            unit(&mut out, "head", &format!("features.{head}"));
            if spec.hidden.is_some() {
                out.push(("hidden".into(), "classifier.0".into()));
                out.push(("classifier".into(), "classifier.3".into()));
            } else {
                out.push(("classifier".into(), "classifier.1".into()));
            }
        }
    }
    Some(out)
}
