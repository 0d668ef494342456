//! Models: serializable specs, the burn modules they build, and parameter accounting.

pub mod arch;
pub mod groups;
pub mod limits;
mod lower;
pub mod nets;
pub mod params;
pub mod spec;

pub use arch::Architecture;
pub use groups::{
    ChannelGroup, PrunableLayer, SliceRole, TensorSlice, check_group_widths, prunable_layers,
    verify_groups,
};
pub use limits::{
    MAX_INPUT_CHANNELS, MAX_LAYERS, MAX_MACS, MAX_PARAMS, MAX_SIDE, MAX_WIDTH, at_most, positive,
};
pub use nets::{
    Classifier, Cnn, ConvBlock, LayerObserver, LayerOutput, LeNet5, Mlp, Model, batch_norm,
    observe, with_bn_momentum,
};
pub use params::{ParamCounts, ParamEntry, PathStack, count_params, observed_macs, param_entries};
pub use spec::{Arch, InputShape, LayerCost, LayerKind, ModelSpec};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{TestBackend, device};
    use burn::module::Module;
    use burn::tensor::{Distribution, Tensor};

    use crate::test_util::MNIST;

    fn all_presets() -> Vec<ModelSpec> {
        ["mlp", "lenet5", "cnn"]
            .iter()
            .map(|f| ModelSpec::preset(f, MNIST, 10).unwrap())
            .chain([ModelSpec {
                input: InputShape {
                    channels: 3,
                    height: 32,
                    width: 30,
                },
                classes: 7,
                arch: Arch::Cnn {
                    blocks: vec![8, 12],
                    fc: 24,
                },
            }])
            .collect()
    }

    #[test]
    fn built_modules_match_spec_parameter_counts() {
        let _rng = crate::test_util::rng_lock();
        for spec in all_presets() {
            let model = spec.init::<TestBackend>(&device());
            let counts = count_params(&model);
            assert_eq!(counts.params, spec.params(), "{}", spec.describe());
            // burn's own count adds two running statistics per batch-norm channel.
            let bn: u64 = spec
                .layers()
                .iter()
                .filter(|l| l.kind == LayerKind::BatchNorm)
                .map(|l| l.params)
                .sum();
            assert_eq!(model.num_params() as u64, spec.params() + bn);
        }
    }

    /// The analytic MACs must equal what the layer shapes seen in a forward pass imply.
    #[test]
    fn macs_match_shapes_seen_in_forward_pass() {
        let _rng = crate::test_util::rng_lock();
        for spec in all_presets() {
            let model = spec.init::<TestBackend>(&device());
            let x = Tensor::<TestBackend, 4>::random(
                [2, spec.input.channels, spec.input.height, spec.input.width],
                Distribution::Default,
                &device(),
            );
            let (macs, observed) = observed_macs(&model, x).unwrap();
            assert_eq!(macs, spec.macs(), "{}", spec.describe());
            let spec_layers: Vec<(String, Vec<usize>)> = spec
                .layers()
                .into_iter()
                .map(|l| (l.name, l.output))
                .collect();
            assert_eq!(observed, spec_layers);
        }
    }

    #[test]
    fn core_channel_groups_match_modules_and_shrink() {
        let _rng = crate::test_util::rng_lock();
        for spec in all_presets() {
            let model = spec.init::<TestBackend>(&device());
            let groups = spec.channel_groups().unwrap();
            verify_groups(&model, &groups).unwrap_or_else(|e| panic!("{}: {e}", spec.describe()));
            let widths: Vec<usize> = groups.iter().map(|g| (g.channels / 2).max(1)).collect();
            let arch = spec
                .arch
                .with_group_widths(spec.input, spec.classes, &widths)
                .unwrap();
            let half = ModelSpec {
                arch,
                ..spec.clone()
            };
            half.validate().unwrap();
            assert!(half.macs() < spec.macs() / 2, "{}", half.describe());
            let e = spec
                .arch
                .with_group_widths(spec.input, spec.classes, &widths[1..])
                .unwrap_err()
                .to_string();
            assert!(e.contains("one width per group"), "{e}");
        }
    }

    #[test]
    fn nonzero_counts_see_zeros() {
        let _rng = crate::test_util::rng_lock();
        let spec = ModelSpec::preset("mlp", MNIST, 10).unwrap();
        let mut model = spec.init::<TestBackend>(&device());
        // A random initial value can itself be exactly 0, so compare with the counts before.
        let before = count_params(&model);
        let zeroed = param_entries(&model, true)
            .into_iter()
            .find(|e| e.path == "layers.2.weight")
            .map(|e| e.nonzero as u64)
            .unwrap();
        assert!(zeroed > 990, "{zeroed}");
        if let Model::Mlp(m) = &mut model {
            let w = m.layers[2].weight.val();
            m.layers[2].weight = burn::module::Param::from_tensor(w.zeros_like());
        }
        let c = count_params(&model);
        assert_eq!(c.params, 266_610);
        assert_eq!(c.nonzero, before.nonzero - zeroed);
    }
}
