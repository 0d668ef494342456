//! Property tests: everything optkit writes reads back to the same thing, for arbitrary
//! contents — the framing of its binary files, sparse and weight-code files, safetensors
//! weights of random models, and report.json.

use std::collections::BTreeMap;

use burn_flex::Flex;
use opt_core::eval::EvalReport;
use opt_core::framed::{read_framed, write_framed};
use opt_core::model::{Arch, InputShape, ModelSpec};
use opt_core::qweights::{QuantTensor, StoredTensor, decode_quant_weights, encode_quant_weights};
use opt_core::report::{Candidate, Deployed, DeployedFile, PipelineReport};
use opt_core::sparse::{decode_sparse, encode_sparse};
use opt_core::weights::{HostTensor, Naming, decode_weights, encode_weights, host_tensors};
use proptest::prelude::*;

/// Mostly zeros (sparse files choose their encoding by it), and any bit pattern: negative
/// zero, NaNs and infinities must come back bit for bit.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![3 => Just(0.0f32), 1 => Just(-0.0f32), 4 => any::<u32>().prop_map(f32::from_bits)]
}

fn tensor() -> impl Strategy<Value = HostTensor> {
    prop::collection::vec(1usize..6, 1..4)
        .prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            (Just(shape), prop::collection::vec(value(), n))
        })
        .prop_map(|(shape, values)| HostTensor { shape, values })
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A positive scale exactly representable in float16 (how scales are stored).
fn scale() -> impl Strategy<Value = f32> {
    (1u16..0x7c00).prop_map(|b| half::f16::from_bits(b).to_f32())
}

fn quant_tensor() -> impl Strategy<Value = StoredTensor> {
    (
        prop::collection::vec(1usize..6, 1..4),
        prop_oneof![Just(4u32), Just(8u32)],
        1usize..9,
    )
        .prop_flat_map(|(shape, bits, block)| {
            let n: usize = shape.iter().product();
            let max = ((1i16 << (bits - 1)) - 1) as i8;
            (
                Just(shape),
                Just(bits),
                Just(block),
                prop::collection::vec(scale(), n.div_ceil(block)),
                prop::collection::vec(-max..=max, n),
            )
        })
        .prop_map(|(shape, bits, block, scales, codes)| {
            StoredTensor::Quant(QuantTensor {
                shape,
                bits,
                block,
                scales,
                codes,
            })
        })
}

fn stored() -> impl Strategy<Value = StoredTensor> {
    prop_oneof![
        quant_tensor(),
        tensor()
            .prop_map(|mut t| {
                // Float tensors of a weight-only file are finite (biases, batch norm).
                t.values.iter_mut().for_each(|v| {
                    if !v.is_finite() {
                        *v = 1.5;
                    }
                });
                t
            })
            .prop_map(StoredTensor::Float)
    ]
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), -1e6f64..1e6, 0.0f64..1.0]
}

fn eval() -> impl Strategy<Value = EvalReport> {
    (
        (
            finite(),
            prop::collection::vec(0.0f64..1.0, 0..12),
            finite(),
            any::<u32>(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (finite(), finite(), any::<u32>(), finite(), any::<u32>()),
        ("[a-z]{1,8}", ".{0,16}"),
    )
        .prop_map(
            |(
                (accuracy, per_class, loss, items),
                (p, nz, macs, size, gz),
                (l50, l95, lr, tp, tb),
                (backend, device),
            )| {
                EvalReport {
                    accuracy,
                    per_class_accuracy: per_class,
                    test_loss: loss,
                    test_items: items as usize,
                    params: p,
                    nonzero_params: nz,
                    macs,
                    size_bytes: size,
                    size_gzip_bytes: gz,
                    latency_b1_ms_p50: l50,
                    latency_b1_ms_p95: l95,
                    latency_runs: lr as usize,
                    throughput_per_s: tp,
                    throughput_batch: tb as usize,
                    backend,
                    device,
                }
            },
        )
}

fn candidate() -> impl Strategy<Value = Candidate> {
    (
        "[a-z][a-z0-9_-]{0,10}",
        prop_oneof![Just("baseline"), Just("prune"), Just("quantize")],
        prop::option::of("[a-z]{2,5}"),
        prop::option::of(prop_oneof![Just(4u32), Just(8u32)]),
        ".{0,20}",
        eval(),
        prop::option::of((".{0,10}", finite()).prop_map(|(k, v)| {
            let mut m = serde_json::Map::new();
            m.insert(k, v.into());
            serde_json::Value::Object(m)
        })),
        prop::collection::vec(".{0,30}", 0..3),
    )
        .prop_map(
            |(name, stage, method, bits, arch, eval, details, summary)| Candidate {
                model_dir: name.clone(),
                name,
                stage: stage.into(),
                method,
                bits,
                arch,
                eval,
                train: None,
                details,
                summary,
            },
        )
}

fn report() -> impl Strategy<Value = PipelineReport> {
    (
        prop::collection::vec(candidate(), 1..4),
        ".{0,20}",
        any::<[u32; 3]>(),
        finite(),
        prop::collection::vec("[a-z]{1,6}", 0..3),
        prop::option::of(("[a-z]{1,6}", "[0-9a-f]{64}", any::<u64>())),
    )
        .prop_map(
            |(candidates, config, items, seconds, reused, deployed)| PipelineReport {
                report_version: 1,
                config,
                data: "embedded Fashion-MNIST subset".into(),
                data_items: items.map(|i| i as usize),
                backend: "flex".into(),
                seconds,
                best: Some(candidates[0].name.clone()),
                selection: None,
                reused,
                deployed: deployed.map(|(path, sha256, bytes)| Deployed {
                    candidate: candidates[0].name.clone(),
                    path: path.clone(),
                    kind: "float32".into(),
                    files: vec![DeployedFile {
                        path: "model.json".into(),
                        bytes,
                        sha256,
                    }],
                }),
                candidates,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn framed_files_round_trip(
        magic in any::<[u8; 8]>(),
        version in any::<u32>(),
        header in prop::collection::vec(any::<u8>(), 0..64),
        body in prop::collection::vec(any::<u8>(), 0..256),
        checksum in any::<bool>(),
    ) {
        let bytes = write_framed(&magic, version, &header, &body, checksum);
        let (h, b) = read_framed(&bytes, &magic, version, checksum).unwrap();
        prop_assert_eq!(h, &header[..]);
        prop_assert_eq!(b, &body[..]);
    }

    #[test]
    fn sparse_files_round_trip_bit_for_bit(
        tensors in prop::collection::btree_map("[a-z.]{1,12}", tensor(), 1..5),
    ) {
        let back = decode_sparse(&encode_sparse(&tensors), 1 << 20).unwrap();
        prop_assert_eq!(back.len(), tensors.len());
        for (name, t) in &tensors {
            prop_assert_eq!(&back[name].shape, &t.shape);
            prop_assert_eq!(bits(&back[name].values), bits(&t.values));
        }
    }

    #[test]
    fn weight_code_files_round_trip(
        tensors in prop::collection::btree_map("[a-z.]{1,12}", stored(), 1..5),
    ) {
        let back = decode_quant_weights(&encode_quant_weights(&tensors), 1 << 20).unwrap();
        prop_assert_eq!(back, tensors);
    }

    #[test]
    fn report_json_round_trips(report in report()) {
        let text = serde_json::to_string_pretty(&report).unwrap();
        let back: PipelineReport = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, report);
    }
}

proptest! {
    // Each case builds a model: fewer cases.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn safetensors_weights_of_random_models_round_trip(
        blocks in prop::collection::vec(1usize..6, 1..3),
        fc in 1usize..9,
        channels in 1usize..4,
        side in 8usize..14,
        classes in 2usize..6,
    ) {
        let _rng = opt_core::train::rng_session();
        let spec = ModelSpec {
            input: InputShape { channels, height: side, width: side },
            classes,
            arch: Arch::Cnn { blocks, fc },
        };
        spec.validate().unwrap();
        let device = Default::default();
        let model = spec.init::<Flex>(&device);
        let bytes = encode_weights(&model, &Naming::Burn).unwrap();
        let fresh = spec.init::<Flex>(&device);
        let back = decode_weights(fresh, &bytes, &Naming::Burn).unwrap();
        let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) =
            (host_tensors(&model).unwrap(), host_tensors(&back).unwrap());
        prop_assert_eq!(a.len(), b.len());
        for (name, t) in &a {
            prop_assert_eq!(bits(&b[name].values), bits(&t.values), "{}", name);
        }
    }
}
