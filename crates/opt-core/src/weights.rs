//! Weights as safetensors files, through burn-store snapshots.
//!
//! Two namings: [`Naming::Burn`] keeps our module paths and burn's layouts (optkit's own model
//! folders); [`Naming::Torch`] writes and reads PyTorch state dicts (torchvision, timm): module
//! paths renamed by the architecture's map, linear weights transposed to `[out, in]`,
//! batch-norm `gamma`/`beta` as `weight`/`bias`, and `num_batches_tracked` written as 0 (and
//! ignored on reading). Reading checks every tensor before anything is loaded: a missing, extra
//! or mis-shaped tensor is an error that names it (and both shapes).

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, TensorData};
use burn_store::{
    BurnToPyTorchAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, TensorSnapshot,
};
use safetensors::tensor::{Dtype, TensorView};

/// How tensors are named and laid out in a safetensors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// Our parameter paths (`blocks.0.conv.weight`) and burn's layouts.
    Burn,
    /// PyTorch state-dict names and layouts; the pairs map our module paths to PyTorch's
    /// (`stem.conv` -> `features.0.0`); a module not listed keeps its path.
    Torch(Vec<(String, String)>),
}

impl Naming {
    fn to_file(&self) -> HashMap<&str, &str> {
        match self {
            Naming::Burn => HashMap::new(),
            Naming::Torch(pairs) => pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect(),
        }
    }

    fn adapter(&self, to_file: bool) -> Option<Box<dyn ModuleAdapter>> {
        match (self, to_file) {
            (Naming::Burn, _) => None,
            (Naming::Torch(_), true) => Some(Box::new(BurnToPyTorchAdapter)),
            (Naming::Torch(_), false) => Some(Box::new(PyTorchToBurnAdapter)),
        }
    }
}

/// Replaces the module part of `path` (everything before the last `.`) through `map`.
fn rename(map: &HashMap<&str, &str>, path: &str) -> String {
    match path.rsplit_once('.') {
        Some((module, leaf)) => match map.get(module) {
            Some(to) => format!("{to}.{leaf}"),
            None => path.to_string(),
        },
        None => path.to_string(),
    }
}

const BATCHES_TRACKED: &str = "num_batches_tracked";

/// Pairs each tensor name in a file of this naming with our parameter path and the shape the
/// file must hold, in the module's order.
fn expected<B: Backend, M: Module<B>>(
    model: &M,
    naming: &Naming,
) -> Vec<(String, String, Vec<usize>)> {
    let map = naming.to_file();
    let ours = model.collect(None, None, true);
    let theirs = model.collect(None, naming.adapter(true), true);
    ours.into_iter()
        .zip(theirs)
        .map(|(o, t)| {
            (
                rename(&map, &t.full_path()),
                o.full_path(),
                t.shape.to_vec(),
            )
        })
        .collect()
}

/// `label: a, b, c (and N more)` for a non-empty list.
fn listing(label: &str, items: &[String]) -> Option<String> {
    const SHOWN: usize = 6;
    if items.is_empty() {
        return None;
    }
    let mut s = format!(
        "{label} ({}): {}",
        items.len(),
        items[..items.len().min(SHOWN)].join(", ")
    );
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    Some(s)
}

/// Serializes every float tensor of `model` (batch-norm running statistics included).
pub fn encode_weights<B: Backend, M: Module<B>>(
    model: &M,
    naming: &Naming,
) -> Result<Vec<u8>, String> {
    let map = naming.to_file();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for snap in model.collect(None, naming.adapter(true), true) {
        let path = snap.full_path();
        let data = snap
            .to_data()
            .map_err(|e| format!("cannot read tensor {path}: {e:?}"))?
            .convert::<f32>();
        let name = rename(&map, &path);
        if matches!(naming, Naming::Torch(_)) && path.ends_with(".running_var") {
            let module = name.rsplit_once('.').map_or("", |(m, _)| m);
            tensors.push((
                format!("{module}.{BATCHES_TRACKED}"),
                Dtype::I64,
                vec![],
                0i64.to_le_bytes().to_vec(),
            ));
        }
        tensors.push((
            name,
            Dtype::F32,
            data.shape.to_vec(),
            data.as_bytes().to_vec(),
        ));
    }
    let mut views = Vec::with_capacity(tensors.len());
    for (name, dtype, shape, bytes) in &tensors {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| format!("cannot encode tensor {name}: {e}"))?;
        views.push((name.clone(), view));
    }
    safetensors::serialize(views, None).map_err(|e| format!("cannot write safetensors: {e}"))
}

/// Loads the tensors of a safetensors file into `model` after checking that the file holds
/// exactly the tensors the model has, with the same shapes.
pub fn decode_weights<B: Backend, M: Module<B>>(
    model: M,
    bytes: &[u8],
    naming: &Naming,
) -> Result<M, String> {
    let file = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file ({e})"))?;
    let want: BTreeMap<String, (String, Vec<usize>)> = expected(&model, naming)
        .into_iter()
        .map(|(file, ours, shape)| (file, (ours, shape)))
        .collect();
    let mut tensors: Vec<(&str, TensorView<'_>)> = file.iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    let (mut extra, mut shapes, mut dtypes, mut found) = (vec![], vec![], vec![], vec![]);
    for (name, view) in tensors {
        if matches!(naming, Naming::Torch(_)) && name.ends_with(BATCHES_TRACKED) {
            continue;
        }
        match want.get(name) {
            None => extra.push(format!("{name} {:?}", view.shape())),
            Some((_, shape)) if shape.as_slice() != view.shape() => {
                shapes.push(misshaped(name, view.shape(), shape))
            }
            Some(_) if view.dtype() != Dtype::F32 => {
                dtypes.push(format!("{name} is {:?}", view.dtype()))
            }
            Some((ours, _)) => found.push((name, ours.clone(), view)),
        }
    }
    let seen: std::collections::HashSet<&str> = file.names().into_iter().collect();
    let missing: Vec<String> = want
        .iter()
        .filter(|(name, _)| !seen.contains(name.as_str()))
        .map(|(name, (_, shape))| format!("{name} {shape:?}"))
        .collect();
    check_fit(&shapes, &missing, &extra, &dtypes)?;
    let snapshots: Vec<TensorSnapshot> = found
        .into_iter()
        .map(|(_, ours, view)| {
            let data =
                TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), DType::F32);
            let stack = ours.split('.').map(str::to_string).collect();
            TensorSnapshot::from_data(data, stack, Vec::new(), ParamId::new())
        })
        .collect();
    apply_snapshots(model, snapshots, naming.adapter(false))
}

/// How a tensor of the wrong shape is listed.
fn misshaped(name: &str, file: &[usize], model: &[usize]) -> String {
    format!("{name} has shape {file:?} in the file, the model needs {model:?}")
}

/// The error naming every tensor that does not fit the model, or `Ok` when all fit.
fn check_fit(
    shapes: &[String],
    missing: &[String],
    extra: &[String],
    dtypes: &[String],
) -> Result<(), String> {
    let problems: Vec<String> = [
        listing("mis-shaped tensors", shapes),
        listing("missing tensors", missing),
        listing("extra tensors", extra),
        listing(
            "tensors that are not float32 (save them as float32)",
            dtypes,
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "weights do not match the model: {}",
            problems.join("; ")
        ))
    }
}

/// Loads checked snapshots into `model`; anything burn-store could not apply is an error.
fn apply_snapshots<B: Backend, M: Module<B>>(
    mut model: M,
    snapshots: Vec<TensorSnapshot>,
    adapter: Option<Box<dyn ModuleAdapter>>,
) -> Result<M, String> {
    let result = model.apply(snapshots, None, adapter, true);
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(format!(
            "weights could not be applied: errors {:?}, missing {:?}, unused {:?}",
            result
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>(),
            result.missing,
            result.unused
        ));
    }
    Ok(model)
}

/// A host copy of one float tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub values: Vec<f32>,
}

impl HostTensor {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every float tensor of `model` (batch-norm running statistics included) by its parameter
/// path, copied to the host as float32.
pub fn host_tensors<B: Backend, M: Module<B>>(
    model: &M,
) -> Result<BTreeMap<String, HostTensor>, String> {
    let mut out = BTreeMap::new();
    for snap in model.collect(None, None, true) {
        let path = snap.full_path();
        let data = snap
            .to_data()
            .map_err(|e| format!("cannot read tensor {path}: {e:?}"))?
            .convert::<f32>();
        let shape = data.shape.to_vec();
        let values = data
            .into_vec::<f32>()
            .map_err(|e| format!("cannot read tensor {path}: {e:?}"))?;
        out.insert(path, HostTensor { shape, values });
    }
    Ok(out)
}

/// Loads host tensors into `model` after checking that they are exactly the model's tensors
/// (by parameter path) with the same shapes; a mismatch names every offending tensor.
pub fn load_host_tensors<B: Backend, M: Module<B>>(
    model: M,
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<M, String> {
    let want: BTreeMap<String, Vec<usize>> = expected(&model, &Naming::Burn)
        .into_iter()
        .map(|(_, ours, shape)| (ours, shape))
        .collect();
    let mut shapes = Vec::new();
    let mut extra = Vec::new();
    for (name, t) in tensors {
        match want.get(name) {
            None => extra.push(format!("{name} {:?}", t.shape)),
            Some(shape) if *shape != t.shape || t.values.len() != t.numel() => {
                shapes.push(misshaped(name, &t.shape, shape))
            }
            Some(_) => {}
        }
    }
    let missing: Vec<String> = want
        .iter()
        .filter(|(name, _)| !tensors.contains_key(*name))
        .map(|(name, shape)| format!("{name} {shape:?}"))
        .collect();
    check_fit(&shapes, &missing, &extra, &[])?;
    let snapshots: Vec<TensorSnapshot> = tensors
        .iter()
        .map(|(path, t)| {
            let data = TensorData::new(t.values.clone(), t.shape.clone());
            let stack = path.split('.').map(str::to_string).collect();
            TensorSnapshot::from_data(data, stack, Vec::new(), ParamId::new())
        })
        .collect();
    apply_snapshots(model, snapshots, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Classifier, ModelSpec};
    use crate::test_util::{MNIST, TestBackend, device, rng_lock};
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn round_trip_in_both_namings_reproduces_outputs() {
        let _rng = rng_lock();
        let spec = ModelSpec::preset("cnn", MNIST, 10).unwrap();
        let model = spec.init::<TestBackend>(&device());
        let x = Tensor::<TestBackend, 4>::random([2, 1, 28, 28], Distribution::Default, &device());
        let torch = Naming::Torch(vec![("blocks.0.bn".into(), "features.1".into())]);
        for naming in [Naming::Burn, torch] {
            let bytes = encode_weights(&model, &naming).unwrap();
            let loaded =
                decode_weights(spec.init::<TestBackend>(&device()), &bytes, &naming).unwrap();
            assert_eq!(
                model.forward(x.clone()).into_data(),
                loaded.forward(x.clone()).into_data()
            );
            let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let names = file.names();
            if naming == Naming::Burn {
                assert!(names.contains(&"blocks.0.bn.gamma"), "{names:?}");
            } else {
                assert!(names.contains(&"features.1.weight"), "{names:?}");
                assert!(
                    names.contains(&"features.1.num_batches_tracked"),
                    "{names:?}"
                );
                // PyTorch layout [out, in] for linear weights.
                assert_eq!(file.tensor("head.weight").unwrap().shape(), &[10, 128]);
            }
        }
    }

    #[test]
    fn mismatches_name_the_tensor_and_both_shapes() {
        let _rng = rng_lock();
        let lenet = ModelSpec::preset("lenet5", MNIST, 10).unwrap();
        let bytes = encode_weights(&lenet.init::<TestBackend>(&device()), &Naming::Burn).unwrap();
        let mut narrow = lenet.clone();
        narrow.arch = crate::model::Arch::Lenet5 {
            conv1: 10,
            conv2: 50,
            fc1: 500,
        };
        let e = decode_weights(narrow.init::<TestBackend>(&device()), &bytes, &Naming::Burn)
            .unwrap_err();
        assert!(
            e.contains(
                "conv1.weight has shape [20, 1, 5, 5] in the file, the model needs [10, 1, 5, 5]"
            ),
            "{e}"
        );
        let cnn = ModelSpec::preset("cnn", MNIST, 10).unwrap();
        let e =
            decode_weights(cnn.init::<TestBackend>(&device()), &bytes, &Naming::Burn).unwrap_err();
        assert!(
            e.contains("missing tensors (19): blocks.0.bn.beta [16]")
                && e.contains("extra tensors (8): conv1.bias [20]"),
            "{e}"
        );
        let e = decode_weights(
            cnn.init::<TestBackend>(&device()),
            &bytes[..100],
            &Naming::Burn,
        )
        .unwrap_err();
        assert!(e.contains("not a valid safetensors file"), "{e}");
    }
}
