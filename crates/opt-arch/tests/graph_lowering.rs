//! Every family's graph gives the figures, channel groups and PyTorch names the hand-written
//! descriptions gave.

use opt_arch::{Family, Preset, ZooArch};
use opt_core::model::{Arch, InputShape, ModelSpec};

fn specs() -> Vec<(String, InputShape, usize, ZooArch)> {
    let mnist = InputShape {
        channels: 1,
        height: 28,
        width: 28,
    };
    let cifar = InputShape {
        channels: 3,
        height: 32,
        width: 32,
    };
    let imagenet = InputShape {
        channels: 3,
        height: 224,
        width: 224,
    };
    let mut out = Vec::new();
    for f in ["mlp", "lenet5", "cnn"] {
        let s = ModelSpec::preset(f, mnist, 10).unwrap();
        out.push((f.to_string(), mnist, 10, ZooArch::Core(s.arch)));
    }
    out.push((
        "cnn-rgb".into(),
        InputShape {
            channels: 3,
            height: 32,
            width: 30,
        },
        7,
        ZooArch::Core(Arch::Cnn {
            blocks: vec![8, 12],
            fc: 24,
        }),
    ));
    for family in Family::all() {
        for (tag, input, classes, width) in [
            ("imagenet", imagenet, 1000, 1.0),
            ("mnist", mnist, 10, 0.35),
            ("cifar", cifar, 10, 0.25),
        ] {
            let arch = Preset {
                width,
                ..Preset::new(family)
            }
            .build(input)
            .unwrap();
            out.push((format!("{}-{tag}", family.name()), input, classes, arch));
        }
    }
    out
}

/// One row of [`BEFORE_GRAPHS`].
type Figures<'a> = (&'a str, u64, u64, usize, usize, u64, u64, u64);

/// `(spec, params, MACs, layers with parameters, channel groups, FNV-1a digests of the JSON of
/// the layer costs, of the channel groups and of the PyTorch names)` as the hand-written
/// descriptions gave them before every family was lowered into a graph (commit 039a1e1):
/// the graph reproduces each figure, each group slice by slice in order, and each name.
#[rustfmt::skip]
const BEFORE_GRAPHS: [Figures<'static>; 40] = [
    ("mlp", 266610, 266200, 3, 2, 0xf8f64bcb90193de5, 0xd646aa0d0f49e731, 0x5b9bc4ba528108e4),
    ("lenet5", 431080, 2293000, 4, 3, 0x7f6ad63a5b580c84, 0xefa60fdca0024bd2, 0x5b9bc4ba528108e4),
    ("cnn", 98554, 1994240, 8, 4, 0x8fd4ac03908d78ec, 0x2e92eb8f729bbb42, 0x5b9bc4ba528108e4),
    ("cnn-rgb", 17447, 431016, 6, 3, 0xb00ea67a13a5d3bc, 0xc6d2644f62db7c98, 0x5b9bc4ba528108e4),
    ("mobilenet_v1-imagenet", 4231976, 568740352, 55, 14, 0x86dd1faf713f92e2, 0x8f198355eb6d90f2, 0x2799f9853dda3523),
    ("mobilenet_v1-mnist", 406074, 18273080, 55, 14, 0x5a58680fb686bfbc, 0xa42ba6d2d43aeba8, 0x2799f9853dda3523),
    ("mobilenet_v1-cifar", 215642, 12038656, 55, 14, 0xee804a41e1a496ca, 0x1c97543151723134, 0x2799f9853dda3523),
    ("mobilenet_v2-imagenet", 3504872, 300774272, 105, 25, 0x675f70bec5497e2f, 0x893305b9cb732c3e, 0x7722ef597858c4da),
    ("mobilenet_v2-mnist", 408650, 12841824, 105, 25, 0xd751f80f26aaf88d, 0x7fa2836cb5ca005d, 0x7722ef597858c4da),
    ("mobilenet_v2-cifar", 250922, 9481216, 105, 24, 0x987da27f638e863a, 0xedb34a755e0e3f08, 0x7722ef597858c4da),
    ("mobilenet_v3_large-imagenet", 5483032, 216589760, 110, 30, 0x605b104bd1137f09, 0x90807348c3be9cc9, 0xc73412681e3629bd),
    ("mobilenet_v3_large-mnist", 552410, 8058832, 110, 30, 0x244f20d5292c173e, 0x6be895825a5de671, 0xc73412681e3629bd),
    ("mobilenet_v3_large-cifar", 299210, 6629760, 110, 30, 0x6837cfe05ee0eba7, 0x97bedf6fecb3df0, 0xc73412681e3629bd),
    ("mobilenet_v3_small-imagenet", 2542856, 56510400, 88, 27, 0x73eb357122b68901, 0xae84b86a06e3bcff, 0xdec52aceaa1f1ab3),
    ("mobilenet_v3_small-mnist", 201210, 2374488, 88, 26, 0x5102bd71c76fcbd6, 0x492a2f079b982cf9, 0xdec52aceaa1f1ab3),
    ("mobilenet_v3_small-cifar", 119842, 2251008, 88, 26, 0x97b0989edfc932df, 0xacb93d3f425657d9, 0xdec52aceaa1f1ab3),
    ("efficientnet_b0-imagenet", 5288548, 385814752, 131, 40, 0x615e4097b2a36ec4, 0x3817ceff18e6e82b, 0x7772f9f5de84619f),
    ("efficientnet_b0-mnist", 539330, 14867904, 131, 40, 0x3bd160d6a2ab8bf3, 0xe7b7a0a9ae59281d, 0x7772f9f5de84619f),
    ("efficientnet_b0-cifar", 328956, 13074720, 131, 39, 0x306f315ab25b6722, 0xd98107a81273aa9b, 0x7772f9f5de84619f),
    ("efficientnet_b1-imagenet", 7794184, 569651680, 185, 53, 0xffad7eb47ad84986, 0xf7c9d3a8f918c32b, 0xf6a2f451a27d981d),
    ("efficientnet_b1-mnist", 868280, 22413456, 185, 53, 0x12f296ddac2c8a7b, 0xeea6605ffc91bbbe, 0xf6a2f451a27d981d),
    ("efficientnet_b1-cifar", 515682, 19349952, 185, 52, 0x39f1822a66e78c65, 0xc5ddb919e4aab208, 0xf6a2f451a27d981d),
    ("efficientnet_b2-imagenet", 9109994, 658963440, 185, 53, 0x1069aff7ec6ace62, 0x60b8ad5edda8490c, 0xf6a2f451a27d981d),
    ("efficientnet_b2-mnist", 1008458, 29995216, 185, 53, 0xab46a5fd7147bd58, 0x520e1834b301ae69, 0xf6a2f451a27d981d),
    ("efficientnet_b2-cifar", 614302, 20649344, 185, 52, 0x285d077f18e0e23a, 0x559b71c12d15575b, 0xf6a2f451a27d981d),
    ("efficientnet_b3-imagenet", 12233232, 962708240, 209, 59, 0x54ce27230b63666a, 0x1df5293b280d7517, 0xfe557ec7cb19c94c),
    ("efficientnet_b3-mnist", 1415480, 38102784, 209, 59, 0xf6f72b448e5cb77f, 0xc7269b8ba6e791f7, 0xfe557ec7cb19c94c),
    ("efficientnet_b3-cifar", 735686, 23811040, 209, 59, 0xf7225ba3e564f0a9, 0x3f861d6944a83697, 0xfe557ec7cb19c94c),
    ("efficientnet_b4-imagenet", 19341616, 1503710432, 257, 71, 0x7275bdb7d32e21b3, 0x7766a164d2f1a3f6, 0x4b00af2ed7edb1dc),
    ("efficientnet_b4-mnist", 2389154, 63302112, 257, 71, 0x5fcf8c7ab4f1afd, 0x94f53848516214c1, 0x4b00af2ed7edb1dc),
    ("efficientnet_b4-cifar", 1195106, 37433952, 257, 71, 0xe6535f5b10514ac2, 0xb77b810560abcb3b, 0x4b00af2ed7edb1dc),
    ("efficientnet_b5-imagenet", 30389784, 2356493184, 311, 84, 0x97c19bf9788161bc, 0xd16cef11e53d8623, 0x1026d1164e80b5ec),
    ("efficientnet_b5-mnist", 3667548, 94547088, 311, 84, 0x93a635010c753f06, 0x3a8f502913c4aaae, 0x1026d1164e80b5ec),
    ("efficientnet_b5-cifar", 2106268, 69943168, 311, 84, 0x69792b268e952fc6, 0xaf5b78d44fa0c4a4, 0x1026d1164e80b5ec),
    ("efficientnet_b6-imagenet", 43040704, 3360166848, 359, 96, 0x11554ca5c3191a11, 0x587124b458213179, 0xf2a691b39f37259e),
    ("efficientnet_b6-mnist", 5256606, 126778944, 359, 96, 0xfb401a8c4d687ece, 0xd3a0629e541800a1, 0xf2a691b39f37259e),
    ("efficientnet_b6-cifar", 2910794, 97714624, 359, 96, 0x23fd25bee31619f5, 0x5eebe1a7c189b7d8, 0xf2a691b39f37259e),
    ("efficientnet_b7-imagenet", 66347960, 5169865152, 437, 115, 0x3c4aadc9f6c5eb24, 0xff949ab67fe4a7cf, 0xd5237a09bb21abf),
    ("efficientnet_b7-mnist", 8378082, 195766944, 437, 115, 0x12f08014864121ea, 0x1145e70ba6e2036d, 0xd5237a09bb21abf),
    ("efficientnet_b7-cifar", 4357628, 133730016, 437, 115, 0x43a62088121ead9, 0xe03a5041a25dd7e9, 0xd5237a09bb21abf),
];

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[test]
fn graphs_give_the_figures_groups_and_names_of_the_hand_written_descriptions() {
    let specs = specs();
    assert_eq!(specs.len(), BEFORE_GRAPHS.len());
    for ((name, input, classes, arch), before) in specs.into_iter().zip(BEFORE_GRAPHS) {
        assert_eq!(name, before.0);
        let spec = ModelSpec {
            input,
            classes,
            arch,
        };
        spec.validate().unwrap();
        let layers = spec.layers();
        let groups = spec.channel_groups().unwrap();
        let torch = spec.torch_modules();
        let now: Figures = (
            name.as_str(),
            spec.params(),
            spec.macs(),
            layers.len(),
            groups.len(),
            fnv(serde_json::to_string(&layers).unwrap().as_bytes()),
            fnv(serde_json::to_string(&groups).unwrap().as_bytes()),
            fnv(serde_json::to_string(&torch).unwrap().as_bytes()),
        );
        assert_eq!(now, before, "{name}");
    }
}
