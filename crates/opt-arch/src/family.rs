//! The model families of opt-arch, named as torchvision names them, and what each fixes about
//! its blocks (activations, squeeze-excitation gate, PyTorch layer names).

use crate::activation::Activation;

/// A model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// MobileNetV1 (Howard et al. 2017); not in torchvision, named in its style.
    MobilenetV1,
    /// MobileNetV2 (Sandler et al. 2018).
    MobilenetV2,
    /// MobileNetV3-Large (Howard et al. 2019).
    MobilenetV3Large,
    /// MobileNetV3-Small.
    MobilenetV3Small,
    /// EfficientNet-B0 to B7 (Tan & Le 2019); the number is the compound-scaling step.
    Efficientnet(u8),
}

impl Family {
    /// Every family, in the order `optkit inspect` lists them.
    pub fn all() -> Vec<Family> {
        let mut v = vec![
            Family::MobilenetV1,
            Family::MobilenetV2,
            Family::MobilenetV3Large,
            Family::MobilenetV3Small,
        ];
        v.extend((0..=7).map(Family::Efficientnet));
        v
    }

    /// torchvision's name (`mobilenet_v2`, `efficientnet_b3`).
    pub fn name(self) -> String {
        match self {
            Family::MobilenetV1 => "mobilenet_v1".into(),
            Family::MobilenetV2 => "mobilenet_v2".into(),
            Family::MobilenetV3Large => "mobilenet_v3_large".into(),
            Family::MobilenetV3Small => "mobilenet_v3_small".into(),
            Family::Efficientnet(b) => format!("efficientnet_b{b}"),
        }
    }

    /// The family with this name, if any.
    pub fn parse(name: &str) -> Option<Family> {
        Family::all().into_iter().find(|f| f.name() == name)
    }

    /// Activation of the stem and of the last 1x1 convolution.
    pub fn stem_activation(self) -> Activation {
        match self {
            Family::MobilenetV1 => Activation::Relu,
            Family::MobilenetV2 => Activation::Relu6,
            Family::MobilenetV3Large | Family::MobilenetV3Small => Activation::Hardswish,
            Family::Efficientnet(_) => Activation::Silu,
        }
    }

    /// Activation inside the squeeze-excitation and its gate.
    pub fn se_activations(self) -> (Activation, Activation) {
        match self {
            Family::Efficientnet(_) => (Activation::Silu, Activation::Sigmoid),
            _ => (Activation::Relu, Activation::Hardsigmoid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in Family::all() {
            assert_eq!(Family::parse(&f.name()), Some(f));
        }
        assert_eq!(Family::all().len(), 12);
        assert_eq!(Family::parse("efficientnet_b8"), None);
    }
}
