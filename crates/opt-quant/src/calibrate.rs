//! Calibration: the float graph run over the first `samples` images of a dataset, twice (range,
//! then histograms), observing the output of every layer with weights but the last.

use burn::tensor::backend::Backend;
use opt_core::data::{Batcher, ImageDataset};

use crate::error::{QuantError, Result};
use crate::graph::FloatGraph;
use crate::observer::TensorStats;

/// Images per calibration batch.
const BATCH: usize = 256;

/// Statistics of every layer output the int8 model requantizes (`None` for pooling layers
/// and the head, whose output stays float).
///
/// # Errors
/// [`QuantError::InvalidValue`] for zero samples, [`QuantError::Calibration`] for images whose
/// shape does not fit the model or a layer producing NaN or infinity.
pub fn calibrate<B: Backend>(
    graph: &FloatGraph,
    data: &ImageDataset,
    batcher: &Batcher,
    samples: usize,
    device: &B::Device,
) -> Result<Vec<Option<TensorStats>>> {
    if samples == 0 {
        return Err(QuantError::invalid(
            "quantize.calibration.samples",
            0,
            "calibration needs at least one image; use a few hundred to a few thousand (1024)",
        ));
    }
    let want = (graph.input.channels, graph.input.height, graph.input.width);
    if (data.channels, data.height, data.width) != want {
        return Err(QuantError::Calibration {
            problem: format!(
                "calibration images of {}x{}x{} (channels x height x width) do not fit the \
                 model, which takes {}x{}x{}; calibrate with the data the model was trained on",
                data.channels, data.height, data.width, want.0, want.1, want.2
            ),
        });
    }
    if data.is_empty() {
        return Err(QuantError::Calibration {
            problem: format!("dataset {} has no images to calibrate with", data.name),
        });
    }
    let n = samples.min(data.len());
    let _span = tracing::info_span!("calibrate", images = n).entered();
    let last = graph.layers.len() - 1;
    let mut stats: Vec<Option<TensorStats>> = graph
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| l.name().filter(|_| i != last).map(TensorStats::new))
        .collect();
    let order: Vec<usize> = (0..n).collect();
    for pass in 0..2 {
        for batch in batcher.batches::<B>(data, &order, BATCH, device) {
            let mut failed = None;
            graph.forward(batch.images, &mut |i, values| {
                if let Some(s) = stats[i].as_mut() {
                    if pass == 0 {
                        if let Err(e) = s.observe_range(values) {
                            failed.get_or_insert(e);
                        }
                    } else {
                        s.observe_hist(values);
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Layer;
    use opt_core::data::Normalization;
    use opt_core::model::{InputShape, Model, ModelSpec};
    use opt_core::test_util::{TestBackend, device};

    fn images(side: usize, n: usize) -> ImageDataset {
        ImageDataset {
            name: "test".into(),
            pixels: (0..n * side * side).map(|i| (i % 251) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            channels: 1,
            height: side,
            width: side,
            num_classes: 10,
        }
    }

    /// Data of the wrong shape, zero samples, an empty dataset and a layer that produces NaN
    /// are errors that say what is wrong (the NaN one names the layer).
    #[test]
    fn bad_calibration_input_is_named() {
        let input = InputShape {
            channels: 1,
            height: 28,
            width: 28,
        };
        let spec = ModelSpec::preset("lenet5", input, 10).unwrap();
        let model: Model<TestBackend> = spec.init(&device());
        let mut graph = FloatGraph::from_model(&model, input).unwrap();
        let batcher = Batcher {
            norm: Normalization {
                mean: 0.3,
                std: 0.3,
            },
        };
        let err = |g: &FloatGraph, ds: &ImageDataset, n: usize| {
            calibrate::<TestBackend>(g, ds, &batcher, n, &device())
                .unwrap_err()
                .to_string()
        };
        let e = err(&graph, &images(32, 4), 4);
        assert!(e.contains("1x32x32") && e.contains("1x28x28"), "{e}");
        assert!(err(&graph, &images(28, 4), 0).contains("samples = 0"));
        assert!(err(&graph, &images(28, 0), 4).contains("no images"));
        if let Layer::Conv(c) = &mut graph.layers[2] {
            c.weight[0] = f32::NAN;
        }
        let e = err(&graph, &images(28, 4), 4);
        assert!(e.contains("conv2") && e.contains("NaN"), "{e}");
    }
}
