//! The sensitivity scan run on a model: each layer (unstructured) or channel group
//! (structured) pruned alone at every scanned ratio and measured on the validation images, then
//! the per-unit ratios derived from the table ([`crate::sensitivity`]) handed to the pruning run
//! as overrides.

use std::collections::BTreeMap;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use opt_core::eval::evaluate_accuracy;
use opt_core::model::{Architecture, ModelSpec, prunable_layers};
use opt_core::train::TrainData;
use opt_core::weights::{HostTensor, load_host_tensors};

use crate::config::{Method, Override, PruneConfig};
use crate::error::{PruneError, Result};
use crate::prune::{groups_of, recalibrate_batch_norm, sample_batches, taylor_products};
use crate::sensitivity::{ScanUnit, SensitivityConfig, SensitivityReport, run_scan};
use crate::structured::{plan_channels, shrink};
use crate::unstructured::{apply_masks, plan_masks, select_layers};

/// Scans every layer (unstructured) or channel group (structured) of the unpruned model and
/// returns the config with the derived per-unit ratios as overrides, and the scan's report.
pub(crate) fn sensitivity_pass<B, A>(
    spec: &ModelSpec<A>,
    tensors: &BTreeMap<String, HostTensor>,
    cfg: &PruneConfig,
    sens: &SensitivityConfig,
    data: &TrainData<'_>,
    batch_size: usize,
    device: &B::Device,
) -> Result<(PruneConfig, SensitivityReport)>
where
    B: AutodiffBackend,
    A: Architecture,
    A::Model<B>: AutodiffModule<B, InnerModule = A::Model<B::InnerBackend>>,
{
    let _span = tracing::info_span!("sensitivity").entered();
    let subset = match sens.samples {
        0 => data.valid.clone(),
        n => data.valid.take(n),
    };
    let accuracy = |m: &A::Model<B::InnerBackend>| {
        evaluate_accuracy(m, &subset, &data.batcher, 256, device).accuracy
    };
    let inner = |t: &BTreeMap<String, HostTensor>, s: &ModelSpec<A>| {
        load_host_tensors(s.init::<B::InnerBackend>(device), t).map_err(PruneError::Model)
    };
    let baseline = accuracy(&inner(tensors, spec)?);
    let taylor = taylor_products::<B, A>(cfg, spec, tensors, data, batch_size, device)?;
    let taylor = taylor.as_ref();
    type Measure<'a> = Box<dyn FnMut(usize, f64) -> Result<f64> + 'a>;
    let (units, bounds, measure): (Vec<ScanUnit>, (f64, f64), Measure<'_>) = match cfg.method {
        Method::Unstructured => {
            let layers = prunable_layers(&spec.layers());
            let selected: Vec<_> = select_layers(cfg, &layers)?.into_iter().cloned().collect();
            let units = selected
                .iter()
                .map(|l| ScanUnit {
                    name: l.name.clone(),
                    size: tensors.get(&l.weight).map_or(0, |t| t.values.len()),
                    fixed: cfg.override_ratio(&l.name),
                })
                .collect();
            let measure = move |i: usize, r: f64| {
                let alone = PruneConfig {
                    target: r,
                    exclude: Vec::new(),
                    overrides: Vec::new(),
                    sensitivity: None,
                    ..cfg.clone()
                };
                let one = std::slice::from_ref(&selected[i]);
                let (masks, _) = plan_masks(&alone, one, tensors, taylor, &|x| x)?;
                let mut t = tensors.clone();
                apply_masks(&mut t, &masks);
                Ok(accuracy(&inner(&t, spec)?))
            };
            (
                units,
                (cfg.min_layer_ratio, cfg.max_layer_ratio),
                Box::new(measure),
            )
        }
        Method::Structured => {
            let groups = groups_of(spec)?;
            let original: Vec<usize> = groups.iter().map(|g| g.channels).collect();
            // Indices of the groups scanned (the excluded ones are neither scanned nor pruned).
            let kept: Vec<usize> = (0..groups.len())
                .filter(|&g| !cfg.excluded(&groups[g].name))
                .collect();
            let units = kept
                .iter()
                .map(|&g| ScanUnit {
                    name: groups[g].name.clone(),
                    size: groups[g].channels,
                    fixed: cfg.override_ratio(&groups[g].name),
                })
                .collect();
            let bn = sample_batches::<B>(data, cfg.bn_batches, batch_size, cfg.seed, device);
            let measure = move |i: usize, r: f64| {
                let alone = PruneConfig {
                    target: 0.0,
                    exclude: Vec::new(),
                    overrides: vec![Override {
                        pattern: groups[kept[i]].name.clone(),
                        ratio: r,
                    }],
                    round_to: 1,
                    sensitivity: None,
                    ..cfg.clone()
                };
                let plan = plan_channels(&alone, &groups, tensors, taylor, &original, 1.0)?;
                let (smaller, sliced) = shrink(spec, &groups, &plan, tensors)?;
                let m = load_host_tensors(smaller.init::<B>(device), &sliced)
                    .map_err(PruneError::Model)?;
                recalibrate_batch_norm(&m, bn.clone());
                Ok(accuracy(&m.valid()))
            };
            (units, (0.0, 1.0), Box::new(measure))
        }
    };
    let report = run_scan(
        sens,
        &units,
        subset.len(),
        baseline,
        cfg.target,
        bounds,
        measure,
    )?;
    let derived = PruneConfig {
        overrides: report
            .rows
            .iter()
            .map(|r| Override {
                pattern: r.name.clone(),
                ratio: r.ratio,
            })
            .collect(),
        ..cfg.clone()
    };
    Ok((derived, report))
}

#[cfg(test)]
mod tests {
    use opt_core::model::Arch;
    use opt_core::test_util::{TestAutodiff, device, rng_lock};

    use crate::config::{Method, Override, PruneConfig};
    use crate::fixture::{data, fixture};
    use crate::prune::{check_config, prune_model};

    #[test]
    fn sensitivity_scan_reports_every_unit_and_its_ratios_meet_the_target() {
        let _rng = rng_lock();
        let f = fixture();
        let sens = Some(crate::SensitivityConfig {
            ratios: vec![0.5, 0.9],
            samples: 60,
        });
        let cfg = PruneConfig {
            target: 0.6,
            finetune_epochs: 0,
            overrides: vec![Override {
                pattern: "head".into(),
                ratio: 0.1,
            }],
            sensitivity: sens.clone(),
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        let scan = out.report.sensitivity.as_ref().unwrap();
        let names: Vec<&str> = scan.rows.iter().map(|r| r.name.as_str()).collect();
        let layers: Vec<&str> = out.report.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, layers);
        assert_eq!(scan.samples, 60);
        for row in &scan.rows {
            assert_eq!(row.fixed, row.name == "head", "{row:?}");
            assert_eq!(row.accuracy.len(), if row.fixed { 0 } else { 2 }, "{row:?}");
            assert!(row.accuracy.iter().all(|a| (0.0..=1.0).contains(a)));
        }
        // The derived ratios are what the layers got, and together they meet the target.
        for (row, l) in scan.rows.iter().zip(&out.report.layers) {
            assert!((row.ratio - l.ratio).abs() < 0.01, "{row:?} {l:?}");
        }
        let s = out.report.sparsity.unwrap();
        assert!((s - 0.6).abs() < 0.005, "{s}");
        let md = out.report.summary().join("\n");
        assert!(md.contains("| layer | size | 0.5 | 0.9 | ratio |"), "{md}");
        assert!(md.contains("(override)"), "{md}");

        // Structured: the channel-weighted mean of the removed fractions is the target.
        let cfg = PruneConfig {
            method: Method::Structured,
            target: 0.3,
            round_to: 1,
            finetune_epochs: 0,
            bn_batches: 2,
            sensitivity: sens,
            ..Default::default()
        };
        let out =
            prune_model::<TestAutodiff, Arch>(&f.spec, &f.model, &cfg, data(&f), &f.cfg, &device())
                .unwrap();
        let scan = out.report.sensitivity.as_ref().unwrap();
        assert_eq!(scan.rows.len(), out.report.groups.len());
        let (before, removed) = out
            .report
            .groups
            .iter()
            .fold((0, 0), |(b, r), g| (b + g.before, r + g.before - g.after));
        let frac = removed as f64 / before as f64;
        assert!((frac - 0.3).abs() <= 1.5 / before as f64 + 0.02, "{frac}");
        // A target the scanned ratios cannot reach is refused before any work.
        let e = check_config(
            &f.spec,
            &PruneConfig {
                target: 0.95,
                ..cfg
            },
            "p",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("p.target = 0.95") && e.contains("sensitivity.ratios"),
            "{e}"
        );
    }
}
