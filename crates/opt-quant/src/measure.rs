//! The int8 model measured the way opt-core measures a float model (`opt_core::eval::measure`),
//! so the two reports compare: accuracy and loss on the test split, batch-1 latency
//! percentiles (raw pixels in, logits out) and batched throughput, on the int8 path.

use std::time::Instant;

use opt_core::data::ImageDataset;
use opt_core::eval::{EvalReport, MeasureConfig, percentile};

use crate::qmodel::QuantModel;

/// Figures that do not come from running the model.
#[derive(Debug, Clone, Copy)]
pub struct StaticFigures {
    /// Multiply-accumulates per image (1 MAC = one multiply-accumulate).
    pub macs: u64,
    /// Bytes of the int8 file.
    pub size_bytes: u64,
    /// Bytes of the int8 file after gzip.
    pub size_gzip_bytes: u64,
}

fn pixels(ds: &ImageDataset, indices: impl Iterator<Item = usize>) -> Vec<u8> {
    indices.flat_map(|i| ds.image(i).iter().copied()).collect()
}

/// Accuracy, per-class accuracy and mean cross-entropy of `model` on `ds`, batch by batch.
pub fn accuracy(
    model: &QuantModel,
    ds: &ImageDataset,
    batch: usize,
    threads: usize,
) -> (f64, Vec<f64>, f64) {
    let classes = model.classes();
    let mut hits = vec![0usize; ds.num_classes];
    let mut seen = vec![0usize; ds.num_classes];
    let mut loss = 0.0f64;
    let order: Vec<usize> = (0..ds.len()).collect();
    for chunk in order.chunks(batch.max(1)) {
        let logits = model.forward(&pixels(ds, chunk.iter().copied()), chunk.len(), threads);
        for (&i, row) in chunk.iter().zip(logits.chunks(classes)) {
            let label = ds.labels[i] as usize;
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let lse = max as f64
                + row
                    .iter()
                    .map(|&v| ((v - max) as f64).exp())
                    .sum::<f64>()
                    .ln();
            loss += lse - row[label] as f64;
            let pred = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (k, &v)| if v > b.1 { (k, v) } else { b },
                )
                .0;
            seen[label] += 1;
            hits[label] += usize::from(pred == label);
        }
    }
    let total = ds.len().max(1);
    let per_class = hits
        .iter()
        .zip(&seen)
        .map(|(&h, &s)| if s == 0 { 0.0 } else { h as f64 / s as f64 })
        .collect();
    (
        hits.iter().sum::<usize>() as f64 / total as f64,
        per_class,
        loss / total as f64,
    )
}

/// Threads the int8 path uses by default: rayon's pool (every core, or `RAYON_NUM_THREADS`).
pub fn default_threads() -> usize {
    rayon::current_num_threads()
}

/// Measures `model` on `test` with every core (`threads`), the same protocol as opt-core's
/// float measurement: untimed warm-up, timed batch-1 runs, timed batches of
/// `cfg.throughput_batch`.
pub fn measure_int8(
    model: &QuantModel,
    test: &ImageDataset,
    cfg: &MeasureConfig,
    figures: StaticFigures,
    threads: usize,
) -> EvalReport {
    let _span = tracing::info_span!("measure", backend = "int8").entered();
    let (acc, per_class, loss) = accuracy(model, test, cfg.throughput_batch, threads);
    let one = pixels(test, 0..1);
    for _ in 0..cfg.warmup_runs {
        let _ = model.forward(&one, 1, threads);
    }
    let mut times: Vec<f64> = (0..cfg.latency_runs)
        .map(|_| {
            let t = Instant::now();
            let _ = model.forward(&one, 1, threads);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let n = cfg.throughput_batch;
    let big = pixels(test, (0..n).map(|i| i % test.len()));
    for _ in 0..cfg.warmup_runs.clamp(1, 3) {
        let _ = model.forward(&big, n, threads);
    }
    let t = Instant::now();
    for _ in 0..cfg.throughput_runs {
        let _ = model.forward(&big, n, threads);
    }
    let throughput = (n * cfg.throughput_runs) as f64 / t.elapsed().as_secs_f64();
    let params = model.params() as u64;
    let nonzero = model.nonzero_params() as u64;
    EvalReport {
        accuracy: acc,
        per_class_accuracy: per_class,
        test_loss: loss,
        test_items: test.len(),
        params,
        nonzero_params: nonzero,
        macs: figures.macs,
        size_bytes: figures.size_bytes,
        size_gzip_bytes: figures.size_gzip_bytes,
        latency_b1_ms_p50: percentile(&times, 0.50),
        latency_b1_ms_p95: percentile(&times, 0.95),
        latency_runs: times.len(),
        throughput_per_s: throughput,
        throughput_batch: n,
        backend: format!("int8-{}", model.isa.name()),
        device: format!("CPU, {threads} threads"),
    }
}
