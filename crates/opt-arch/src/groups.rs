//! Channel groups of the MobileNets and EfficientNets for structured pruning, and the specs
//! they shrink to.
//!
//! MobileNetV2/V3/EfficientNet: the stem's channels; per block, the expanded channels (the
//! expansion's outputs, tied to the depthwise convolution, its batch norm, the
//! squeeze-excitation's input and gate, and the projection's input), the squeeze channels, and
//! the block's outputs, shared by every block of a residual chain (a residual block adds its
//! input to its output, so both must keep the same channels). A block without expansion runs
//! its depthwise convolution on its input channels, which ties it to the previous group. Then
//! the head convolution's channels and MobileNetV3's hidden linear layer.
//! MobileNetV1: the stem's channels and each pointwise convolution's outputs, each tied to the
//! next block's depthwise convolution.

use opt_core::Result;
use opt_core::model::{ChannelGroup, check_group_widths};

use crate::spec::{MobileNetSpec, MobileNetV1Spec};

/// Which spec width a group sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    Stem,
    Expanded(usize),
    Out(usize),
    Se(usize),
    Head,
    Hidden,
}

type Groups = Vec<(ChannelGroup, Vec<Width>)>;

impl MobileNetSpec {
    fn groups_with_widths(&self) -> Groups {
        let mut groups: Groups = vec![(
            ChannelGroup::new("stem", self.stem)
                .conv_out("stem.conv", false)
                .norm("stem.bn")
                .build(),
            vec![Width::Stem],
        )];
        let mut cur = 0;
        for (i, (_, b)) in self.blocks().into_iter().enumerate() {
            let name = format!("blocks.{i}");
            let hidden = match b.expanded {
                Some(e) => {
                    groups[cur].0.conv_in(&format!("{name}.expand.conv"));
                    groups.push((
                        ChannelGroup::new(format!("{name}.expanded"), e)
                            .conv_out(&format!("{name}.expand.conv"), false)
                            .norm(&format!("{name}.expand.bn"))
                            .build(),
                        vec![Width::Expanded(i)],
                    ));
                    groups.len() - 1
                }
                None => cur,
            };
            groups[hidden].0.depthwise(
                &format!("{name}.depthwise.conv"),
                &format!("{name}.depthwise.bn"),
            );
            if let Some(s) = b.se {
                groups[hidden]
                    .0
                    .conv_in(&format!("{name}.se.fc1"))
                    .gate(&format!("{name}.se.fc2"));
                groups.push((
                    ChannelGroup::new(format!("{name}.se"), s)
                        .conv_out(&format!("{name}.se.fc1"), true)
                        .conv_in(&format!("{name}.se.fc2"))
                        .build(),
                    vec![Width::Se(i)],
                ));
            }
            groups[hidden].0.conv_in(&format!("{name}.project.conv"));
            let project = |g: &mut ChannelGroup| {
                g.conv_out(&format!("{name}.project.conv"), false)
                    .norm(&format!("{name}.project.bn"));
            };
            if b.residual {
                project(&mut groups[cur].0);
                groups[cur].1.push(Width::Out(i));
            } else {
                let mut g = ChannelGroup::new(format!("{name}.out"), b.out);
                project(&mut g);
                groups.push((g, vec![Width::Out(i)]));
                cur = groups.len() - 1;
            }
        }
        groups[cur].0.conv_in("head.conv");
        let mut head = ChannelGroup::new("head", self.head);
        head.conv_out("head.conv", false).norm("head.bn");
        match self.hidden {
            Some(h) => {
                head.linear_in("hidden", 1);
                groups.push((head, vec![Width::Head]));
                groups.push((
                    ChannelGroup::new("hidden", h)
                        .linear_out("hidden")
                        .linear_in("classifier", 1)
                        .build(),
                    vec![Width::Hidden],
                ));
            }
            None => {
                head.linear_in("classifier", 1);
                groups.push((head, vec![Width::Head]));
            }
        }
        groups
    }

    /// The channel groups, in a fixed order.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        self.groups_with_widths()
            .into_iter()
            .map(|(g, _)| g)
            .collect()
    }

    /// The spec with group `i` narrowed to `widths[i]` channels.
    pub fn with_group_widths(&self, widths: &[usize]) -> Result<Self> {
        let groups = self.groups_with_widths();
        let plain: Vec<ChannelGroup> = groups.iter().map(|(g, _)| g.clone()).collect();
        check_group_widths(&plain, widths)?;
        let mut spec = self.clone();
        for ((_, targets), &w) in groups.iter().zip(widths) {
            for t in targets {
                match *t {
                    Width::Stem => spec.stem = w,
                    Width::Head => spec.head = w,
                    Width::Hidden => spec.hidden = Some(w),
                    Width::Expanded(i) | Width::Out(i) | Width::Se(i) => {
                        let b = spec
                            .stages
                            .iter_mut()
                            .flatten()
                            .nth(i)
                            .expect("group indices come from this spec's blocks");
                        match *t {
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
    /// The channel groups: the stem and each pointwise convolution's outputs.
    pub fn channel_groups(&self) -> Vec<ChannelGroup> {
        let mut groups = vec![
            ChannelGroup::new("stem", self.stem)
                .conv_out("stem.conv", false)
                .norm("stem.bn")
                .build(),
        ];
        for (i, b) in self.blocks.iter().enumerate() {
            let name = format!("blocks.{i}");
            let last = groups.last_mut().expect("the stem group is first");
            last.depthwise(
                &format!("{name}.depthwise.conv"),
                &format!("{name}.depthwise.bn"),
            )
            .conv_in(&format!("{name}.pointwise.conv"));
            groups.push(
                ChannelGroup::new(format!("{name}.pointwise"), b.out)
                    .conv_out(&format!("{name}.pointwise.conv"), false)
                    .norm(&format!("{name}.pointwise.bn"))
                    .build(),
            );
        }
        groups
            .last_mut()
            .expect("the stem group is first")
            .linear_in("classifier", 1);
        groups
    }

    /// The spec with the stem and the blocks narrowed to `widths` (stem first).
    pub fn with_group_widths(&self, widths: &[usize]) -> Result<Self> {
        check_group_widths(&self.channel_groups(), widths)?;
        let mut spec = self.clone();
        spec.stem = widths[0];
        for (b, &w) in spec.blocks.iter_mut().zip(&widths[1..]) {
            b.out = w;
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
            let groups = spec.arch.channel_groups(input, 5).unwrap();
            verify_groups(&model, &groups).unwrap_or_else(|e| panic!("{}: {e}", family.name()));
            let widths: Vec<usize> = groups.iter().map(|g| (g.channels - 1).max(1)).collect();
            let smaller = spec.arch.with_group_widths(input, 5, &widths).unwrap();
            let again = smaller.channel_groups(input, 5).unwrap();
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
