//! How the MobileNets and EfficientNets shrink when structured pruning narrows their channel
//! groups. The groups themselves come from the model graph (`lower.rs`) by dependency
//! analysis: for MobileNetV2/V3/EfficientNet the stem's channels; per block, the expanded
//! channels (tied to the depthwise convolution, its batch norm, the squeeze-excitation's input
//! and gate, and the projection's input), the squeeze channels, and the block's outputs,
//! shared by every block of a residual chain; a block without expansion runs its depthwise
//! convolution on its input channels, which ties it to the previous group; then the head
//! convolution's channels and MobileNetV3's hidden linear layer. MobileNetV1: the stem's
//! channels and each pointwise convolution's outputs, each tied to the next block's depthwise
//! convolution.
//!
//! A group's width is set on every spec field whose layer produces its channels (a residual
//! chain sets each of its blocks' `out`); the depthwise convolutions follow their input.

use opt_core::Result;
use opt_core::model::{ChannelGroup, SliceRole, check_group_widths};

use crate::spec::{MobileNetSpec, MobileNetV1Spec};

/// Which spec width a producing layer sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Stem,
    Expanded(usize),
    Out(usize),
    Se(usize),
    Head,
    Hidden,
}

/// The spec width the layer `node` (a graph node name) computes channels for, if any.
fn width_of(node: &str) -> Option<Width> {
    match node {
        "stem.conv" => return Some(Width::Stem),
        "head.conv" => return Some(Width::Head),
        "hidden" => return Some(Width::Hidden),
        _ => {}
    }
    let rest = node.strip_prefix("blocks.")?;
    let (i, layer) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    match layer {
        "expand.conv" => Some(Width::Expanded(i)),
        "project.conv" | "pointwise.conv" => Some(Width::Out(i)),
        "se.fc1" => Some(Width::Se(i)),
        _ => None,
    }
}

/// Every (width, group index) pair the groups' producers name.
fn targets(groups: &[ChannelGroup]) -> Vec<(Width, usize)> {
    let mut out = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for s in g.slices.iter().filter(|s| s.role == SliceRole::Producer) {
            let node = s.path.rsplit_once('.').map_or(s.path.as_str(), |(n, _)| n);
            if let Some(w) = width_of(node).filter(|w| !out.contains(&(*w, gi))) {
                out.push((w, gi));
            }
        }
    }
    out
}

impl MobileNetSpec {
    /// The spec with group `i` of `groups` (this spec's graph's groups) narrowed to
    /// `widths[i]` channels.
    pub fn with_group_widths(&self, groups: &[ChannelGroup], widths: &[usize]) -> Result<Self> {
        check_group_widths(groups, widths)?;
        let mut spec = self.clone();
        for (target, gi) in targets(groups) {
            let w = widths[gi];
            match target {
                Width::Stem => spec.stem = w,
                Width::Head => spec.head = w,
                Width::Hidden => spec.hidden = Some(w),
                Width::Expanded(i) | Width::Out(i) | Width::Se(i) => {
                    if let Some(b) = spec.stages.iter_mut().flatten().nth(i) {
                        match target {
                            Width::Expanded(_) => b.expanded = Some(w),
                            Width::Out(_) => b.out = w,
                            _ => b.se = Some(w),
                        }
                    }
                }
            }
        }
        Ok(spec)
    }
}

impl MobileNetV1Spec {
    /// The spec with group `i` of `groups` (this spec's graph's groups: the stem, then each
    /// block's pointwise outputs) narrowed to `widths[i]` channels.
    pub fn with_group_widths(&self, groups: &[ChannelGroup], widths: &[usize]) -> Result<Self> {
        check_group_widths(groups, widths)?;
        let mut spec = self.clone();
        for (target, gi) in targets(groups) {
            match target {
                Width::Stem => spec.stem = widths[gi],
                Width::Out(i) => {
                    if let Some(b) = spec.blocks.get_mut(i) {
                        b.out = widths[gi];
                    }
                }
                _ => {}
            }
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Family, Preset, ZooArch};
    use opt_core::model::{Architecture, InputShape, ModelSpec, verify_groups};
    use opt_core::test_util::{TestBackend, device};

    /// Every family's groups match the tensors of the module it builds, and shrinking every
    /// group by one channel gives a valid spec whose groups shrank accordingly.
    #[test]
    fn groups_match_modules_and_shrink() {
        let input = InputShape {
            channels: 3,
            height: 32,
            width: 32,
        };
        for family in Family::all() {
            let arch = Preset {
                width: 0.25,
                ..Preset::new(family)
            }
            .build(input)
            .unwrap();
            let spec = ModelSpec::<ZooArch> {
                input,
                classes: 5,
                arch,
            };
            let model = spec.init::<TestBackend>(&device());
            let groups = spec.channel_groups().unwrap();
            verify_groups(&model, &groups).unwrap_or_else(|e| panic!("{}: {e}", family.name()));
            let widths: Vec<usize> = groups.iter().map(|g| (g.channels - 1).max(1)).collect();
            let smaller = spec.arch.with_group_widths(input, 5, &widths).unwrap();
            let again = smaller.graph(input, 5).channel_groups().unwrap();
            assert_eq!(
                again.iter().map(|g| g.channels).collect::<Vec<_>>(),
                widths,
                "{}",
                family.name()
            );
            ModelSpec {
                arch: smaller,
                ..spec.clone()
            }
            .validate()
            .unwrap();
        }
    }
}
