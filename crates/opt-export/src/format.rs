//! The export formats and the bytes of one exported file.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn_store::{BurnpackStore, ModuleSnapshot};
use opt_arch::ZooModel;
use opt_core::model::Architecture;
use opt_core::weights::{Naming, encode_weights};
use opt_quant::graph::FloatGraph;
use serde::{Deserialize, Serialize};

use crate::error::{ExportError, Result};
use crate::onnx_export::{OnnxMeta, float_onnx, qdq_onnx};
use crate::source::SourceModel;

/// A file format a model is exported to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// ONNX, opset 17: float graphs, or int8 models in QDQ form.
    Onnx,
    /// safetensors with PyTorch state-dict names and layouts (float models).
    Safetensors,
    /// burn's own format, Burnpack (`.bpk`, burn-store), loadable into the burn module.
    Burn,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 3] = [
        ExportFormat::Onnx,
        ExportFormat::Safetensors,
        ExportFormat::Burn,
    ];

    /// The format's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "onnx",
            ExportFormat::Safetensors => "safetensors",
            ExportFormat::Burn => "burn",
        }
    }

    /// The exported file's name in a bundle.
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Onnx => "model.onnx",
            ExportFormat::Safetensors => "model.safetensors",
            ExportFormat::Burn => "model.bpk",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExportFormat {
    type Err = ExportError;

    fn from_str(s: &str) -> Result<Self> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ExportError::UnknownFormat { value: s.into() })
    }
}

/// The bytes of `source` (read from `folder`) exported as `format`.
///
/// # Errors
/// [`ExportError::CannotHold`] when the format cannot represent the model: an int8 model as
/// safetensors or burn (float formats), a model outside opt-core's families as ONNX.
pub fn export_bytes<B: Backend>(
    source: &SourceModel<B>,
    format: ExportFormat,
    folder: &Path,
    name: &str,
) -> Result<Vec<u8>> {
    let meta = source.meta();
    let family = meta.spec.arch.family();
    let cannot = |reason: String, fix: &str| ExportError::CannotHold {
        format: format.name().into(),
        model: format!("{} ({} {family})", folder.display(), source.kind()),
        reason,
        fix: fix.into(),
    };
    let onnx_meta = OnnxMeta {
        name: name.into(),
        class_names: meta.class_names.clone(),
        mean: meta.normalization.mean,
        std: meta.normalization.std,
    };
    match (source, format) {
        (SourceModel::Int8 { model, .. }, ExportFormat::Onnx) => Ok(qdq_onnx(model, &onnx_meta)),
        (SourceModel::Int8 { .. }, _) => Err(cannot(
            "the int8 model runs on optkit's integer path (int8 codes, per-channel scales and \
             calibrated 8-bit activation ranges), and this format holds the float tensors of a \
             burn module, which would drop the activation quantization"
                .into(),
            "export it with --format onnx (int8 weights and activations in QDQ form), or \
             export the float model it was quantized from",
        )),
        (SourceModel::Float { model, .. }, ExportFormat::Onnx) => {
            let ZooModel::Core(core) = &**model else {
                return Err(cannot(
                    format!(
                        "ONNX export covers opt-core's families (mlp, lenet5, cnn); {family} \
                         (depthwise convolutions, residual blocks) has no ONNX writer yet"
                    ),
                    "export it with --format safetensors (PyTorch state-dict names) or \
                     --format burn",
                ));
            };
            let graph = FloatGraph::from_model(core, meta.spec.input)
                .map_err(|e| cannot(e.to_string(), "export it with --format safetensors"))?;
            Ok(float_onnx(&graph, &onnx_meta))
        }
        (SourceModel::Float { model, .. }, ExportFormat::Safetensors) => {
            let spec = &meta.spec;
            let pairs = spec.torch_modules().unwrap_or_default();
            encode_weights(&**model, &Naming::Torch(pairs))
                .map_err(|e| cannot(e, "export it with --format burn"))
        }
        (SourceModel::Float { model, .. }, ExportFormat::Burn) => {
            let mut store = BurnpackStore::from_bytes(None).metadata("producer", "optkit");
            model
                .save_into(&mut store)
                .map_err(|e| cannot(e.to_string(), "export it with --format safetensors"))?;
            let bytes = store
                .get_bytes()
                .map_err(|e| cannot(e.to_string(), "export it with --format safetensors"))?;
            Ok(bytes.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opt_arch::ArchChoice;
    use opt_core::artifact::{FORMAT_VERSION, ModelMeta, WEIGHTS_FILE};
    use opt_core::data::Normalization;
    use opt_core::model::{InputShape, ModelSpec};
    use opt_core::test_util::{TestBackend, device};
    use prost::Message;

    use crate::onnx_proto::ModelProto;

    fn source(arch: &str, width: Option<f64>) -> SourceModel<TestBackend> {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let mut choice = ArchChoice::named(arch).unwrap();
        if let (ArchChoice::Preset(p), Some(w)) = (&mut choice, width) {
            p.width = w;
            p.small_input = Some(true);
        }
        let spec = ModelSpec {
            input,
            classes: 10,
            arch: choice.resolve(input).unwrap(),
        };
        let model = spec.init(&device());
        let meta = ModelMeta {
            format_version: FORMAT_VERSION,
            spec,
            normalization: Normalization {
                mean: 0.3,
                std: 0.35,
            },
            class_names: (0..10).map(|i| i.to_string()).collect(),
            weights: WEIGHTS_FILE.into(),
            test_data: None,
        };
        SourceModel::Float {
            meta,
            model: Box::new(model),
        }
    }

    #[test]
    fn float_onnx_holds_the_layers_in_order_with_opset_17() {
        let s = source("lenet5", None);
        let bytes = export_bytes(&s, ExportFormat::Onnx, Path::new("m"), "m").unwrap();
        let m = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!((m.ir_version, m.opset_import[0].version), (8, 17));
        let g = m.graph.unwrap();
        let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(
            ops,
            [
                "Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Gemm", "Relu", "Flatten", "Gemm"
            ]
        );
        assert_eq!(g.node.last().unwrap().output, ["logits"]);
        // conv1 (20x1x5x5 + 20), conv2 (50x20x5x5 + 50), fc1 (500x800 + 500), fc2 (10x500 + 10).
        let values: usize = g.initializer.iter().map(|t| t.raw_data.len() / 4).sum();
        assert_eq!(values, 431_080);
    }

    #[test]
    fn formats_that_cannot_hold_a_model_say_what_to_use() {
        let s = source("mobilenet_v2", Some(0.35));
        let err = export_bytes(&s, ExportFormat::Onnx, Path::new("m"), "m")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot export m (float32 mobilenet_v2) as onnx")
                && err.contains("--format safetensors"),
            "{err}"
        );
        // The same model goes to safetensors under PyTorch's names.
        let bytes = export_bytes(&s, ExportFormat::Safetensors, Path::new("m"), "m").unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert!(
            st.names().iter().any(|n| n.starts_with("features.0.0.")),
            "{:?}",
            st.names()
        );
        assert_eq!("onnx".parse::<ExportFormat>().unwrap(), ExportFormat::Onnx);
        assert!("tflite".parse::<ExportFormat>().is_err());
    }
}
