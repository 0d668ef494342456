//! opt-arch: efficient architectures for optkit — MobileNetV1, MobileNetV2, MobileNetV3-Large
//! and -Small, EfficientNet-B0 to B7 — as burn modules built from explicit specs.
//!
//! The blocks (depthwise-separable convolution, inverted residual in its MobileNetV2,
//! MobileNetV3 and MBConv forms, squeeze-excitation, stochastic depth, `make_divisible`) are
//! burn layers with a `Config`. The presets write every block out as a [`MobileNetSpec`], so a
//! pruned network is still a plain spec. At 224x224, 3 channels and 1000 classes the parameter
//! counts equal torchvision's, and PyTorch-named safetensors weights load and save through
//! the PyTorch names of their model graphs and `opt_core::weights`.
//!
//! ```
//! use opt_arch::{Family, Preset, ZooArch};
//! use opt_core::model::{InputShape, ModelSpec};
//!
//! let input = InputShape { channels: 3, height: 224, width: 224 };
//! let arch = Preset::new(Family::MobilenetV2).build(input).unwrap();
//! let spec = ModelSpec::<ZooArch> { input, classes: 1000, arch };
//! assert_eq!(spec.params(), 3_504_872);
//! // let model = spec.init::<burn_flex::Flex>(&Default::default());
//! ```

pub mod activation;
pub mod conv_bn_act;
pub mod depthwise_separable;
pub mod family;
pub mod groups;
pub mod inverted_residual;
mod lower;
pub mod make_divisible;
pub mod nets;
pub mod presets;
pub mod spec;
pub mod squeeze_excitation;
pub mod stochastic_depth;
pub mod zoo;

pub use activation::Activation;
pub use family::Family;
pub use make_divisible::make_divisible;
pub use nets::{MobileNet, MobileNetV1};
pub use presets::Preset;
pub use spec::{BlockSpec, MobileNetSpec, MobileNetV1Spec, SeparableSpec};
pub use zoo::{ArchChoice, ZooArch, ZooModel, family_names};
