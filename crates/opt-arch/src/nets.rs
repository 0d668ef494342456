//! The networks: [`MobileNetV1`] and [`MobileNet`] (V2, V3 and EfficientNet share its
//! structure: stem, inverted residual blocks, head convolution, pooling, classifier).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Tensor, backend::Backend};
use opt_core::model::{Classifier, InputShape, LayerObserver, observe};

use crate::activation::Activation;
use crate::conv_bn_act::{ConvBnAct, ConvBnActConfig};
use crate::depthwise_separable::{DepthwiseSeparable, DepthwiseSeparableConfig};
use crate::family::Family;
use crate::inverted_residual::{InvertedResidual, InvertedResidualConfig};
use crate::spec::{MobileNetSpec, MobileNetV1Spec};

/// MobileNetV1: stem, depthwise-separable blocks, average pooling, dropout, classifier.
#[derive(Module, Debug)]
pub struct MobileNetV1<B: Backend> {
    /// 3x3 stem convolution + batch norm + ReLU.
    pub stem: ConvBnAct<B>,
    /// Depthwise-separable blocks.
    pub blocks: Vec<DepthwiseSeparable<B>>,
    /// Dropout before the classifier (training only).
    pub dropout: Dropout,
    /// Pooled features to classes.
    pub classifier: Linear<B>,
}

/// MobileNetV2, MobileNetV3 and EfficientNet.
#[derive(Module, Debug)]
pub struct MobileNet<B: Backend> {
    /// 3x3 stem convolution + batch norm + activation.
    pub stem: ConvBnAct<B>,
    /// The inverted residual blocks, all stages in order.
    pub blocks: Vec<InvertedResidual<B>>,
    /// 1x1 convolution + batch norm + activation before pooling.
    pub head: ConvBnAct<B>,
    /// MobileNetV3's hidden linear layer (followed by hard-swish).
    pub hidden: Option<Linear<B>>,
    /// Activation after the hidden layer.
    pub hidden_act: Activation,
    /// Dropout before the classifier (training only).
    pub dropout: Dropout,
    /// Features to classes.
    pub classifier: Linear<B>,
}

/// Global average pooling: `[n, c, h, w]` to `[n, c]`.
fn pool<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    x.mean_dim(3).mean_dim(2).flatten::<2>(1, 3)
}

impl<B: Backend> Classifier<B> for MobileNetV1<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        let mut x = self.stem.forward(images, "stem", obs);
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(x, &format!("blocks.{i}"), obs);
        }
        let y = self.classifier.forward(self.dropout.forward(pool(x)));
        observe(obs, "classifier", &y);
        y
    }
}

impl<B: Backend> Classifier<B> for MobileNet<B> {
    fn forward_observed(&self, images: Tensor<B, 4>, obs: LayerObserver<'_, B>) -> Tensor<B, 2> {
        let mut x = self.stem.forward(images, "stem", obs);
        for (i, b) in self.blocks.iter().enumerate() {
            x = b.forward(x, &format!("blocks.{i}"), obs);
        }
        let mut y = pool(self.head.forward(x, "head", obs));
        if let Some(hidden) = &self.hidden {
            y = hidden.forward(y);
            observe(obs, "hidden", &y);
            y = self.hidden_act.forward(y);
        }
        let y = self.classifier.forward(self.dropout.forward(y));
        observe(obs, "classifier", &y);
        y
    }
}

impl MobileNetV1Spec {
    /// Builds the network.
    pub fn build<B: Backend>(
        &self,
        input: InputShape,
        classes: usize,
        device: &B::Device,
    ) -> MobileNetV1<B> {
        let mut prev = self.stem;
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                let block = DepthwiseSeparableConfig::new([prev, b.out])
                    .with_stride(b.stride)
                    .with_bn_eps(self.bn_eps)
                    .init(device);
                prev = b.out;
                block
            })
            .collect();
        MobileNetV1 {
            stem: ConvBnActConfig::new([input.channels, self.stem])
                .with_kernel(3)
                .with_stride(self.stem_stride)
                .with_bn_eps(self.bn_eps)
                .init(device),
            blocks,
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(prev, classes).init(device),
        }
    }
}

impl MobileNetSpec {
    /// Builds the network of `family` (which fixes the activations of the stem, the head and
    /// the squeeze-excitation).
    pub fn build<B: Backend>(
        &self,
        family: Family,
        input: InputShape,
        classes: usize,
        device: &B::Device,
    ) -> MobileNet<B> {
        let act = family.stem_activation();
        let (se_act, se_gate) = family.se_activations();
        let unit = |channels, kernel, stride| {
            ConvBnActConfig::new(channels)
                .with_kernel(kernel)
                .with_stride(stride)
                .with_activation(act)
                .with_bn_eps(self.bn_eps)
                .with_bn_momentum(self.bn_momentum)
                .init(device)
        };
        let blocks_in = self.blocks();
        let total = blocks_in.len().max(1) as f64;
        let blocks = blocks_in
            .iter()
            .enumerate()
            .map(|(i, (cin, b))| {
                InvertedResidualConfig::new(*cin, b.out)
                    .with_expanded(b.expanded)
                    .with_kernel(b.kernel)
                    .with_stride(b.stride)
                    .with_activation(b.act)
                    .with_se(b.se)
                    .with_se_activation(se_act)
                    .with_se_gate(se_gate)
                    .with_residual(b.residual)
                    .with_drop_path(self.drop_path * i as f64 / total)
                    .with_bn_eps(self.bn_eps)
                    .with_bn_momentum(self.bn_momentum)
                    .init(device)
            })
            .collect();
        let last = blocks_in.last().map_or(self.stem, |(_, b)| b.out);
        let features = self.hidden.unwrap_or(self.head);
        MobileNet {
            stem: unit([input.channels, self.stem], 3, self.stem_stride),
            blocks,
            head: unit([last, self.head], 1, 1),
            hidden: self
                .hidden
                .map(|h| LinearConfig::new(self.head, h).init(device)),
            hidden_act: Activation::Hardswish,
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(features, classes).init(device),
        }
    }
}
