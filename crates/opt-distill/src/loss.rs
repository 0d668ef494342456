//! The distillation loss of Hinton et al. (2015):
//! `α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·CE(s, labels)`.
//!
//! The soft term's gradient with respect to the student logits is `α·T·(p_s − p_t)/N` at
//! temperature T: without the T² factor it would shrink as 1/T² and the labels would dominate
//! at the temperatures distillation uses. The KL divergence is averaged over the batch
//! (`batchmean`), like the cross-entropy.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// The two terms of the loss, already weighted (`total = soft + hard`).
#[derive(Debug, Clone)]
pub struct LossTerms<B: Backend> {
    /// `α·T²·KL(p_t ‖ p_s)`, batch mean.
    pub soft: Tensor<B, 1>,
    /// `(1 − α)·CE(student, labels)`, batch mean.
    pub hard: Tensor<B, 1>,
}

impl<B: Backend> LossTerms<B> {
    /// `soft + hard`.
    pub fn total(&self) -> Tensor<B, 1> {
        self.soft.clone() + self.hard.clone()
    }
}

/// `T²·KL(softmax(teacher/T) ‖ softmax(student/T))`, averaged over the batch. The teacher
/// logits carry no gradient (detach them if they come from a tracked graph).
///
/// # Shapes
/// - student, teacher: `[batch, classes]`
/// - output: `[1]`
pub fn soft_target_loss<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 1> {
    let [n, _] = student.dims();
    let log_ps = log_softmax(student.div_scalar(temperature), 1);
    // log-probabilities of the teacher stay finite where its probabilities underflow to 0, so
    // p·(log p − log q) is 0 there instead of 0·(−inf).
    let log_pt = log_softmax(teacher.detach().div_scalar(temperature), 1);
    let pt = log_pt.clone().exp();
    pt.mul(log_pt.sub(log_ps))
        .sum()
        .div_scalar(n as f64)
        .mul_scalar(temperature * temperature)
}

/// Both weighted terms of the distillation loss. With `alpha = 0` the soft term is a zero
/// constant and `teacher` is not read (pass the student's logits detached, or anything of the
/// same shape).
pub fn distillation_loss<B: Backend>(
    student: Tensor<B, 2>,
    teacher: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
    alpha: f64,
) -> LossTerms<B> {
    let device = student.device();
    let soft = if alpha > 0.0 {
        soft_target_loss(student.clone(), teacher, temperature).mul_scalar(alpha)
    } else {
        Tensor::zeros([1], &device)
    };
    let hard = if alpha < 1.0 {
        CrossEntropyLossConfig::new()
            .init(&device)
            .forward(student, targets)
            .mul_scalar(1.0 - alpha)
    } else {
        Tensor::zeros([1], &device)
    };
    LossTerms { soft, hard }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use opt_core::rng::SplitMix64;
    use opt_core::test_util::{TestAutodiff, device};

    /// Plain f64 reference: the loss and its gradient with respect to the student logits.
    fn reference(
        s: &[Vec<f64>],
        t: &[Vec<f64>],
        y: &[usize],
        temp: f64,
        alpha: f64,
    ) -> (f64, Vec<Vec<f64>>) {
        let softmax = |v: &[f64], temp: f64| {
            let m = v.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = v.iter().map(|x| ((x - m) / temp).exp()).collect();
            let z: f64 = e.iter().sum();
            e.into_iter().map(|x| x / z).collect::<Vec<f64>>()
        };
        let n = s.len() as f64;
        let (mut loss, mut grad) = (0.0, Vec::new());
        for ((si, ti), &yi) in s.iter().zip(t).zip(y) {
            let (ps, pt, p1) = (softmax(si, temp), softmax(ti, temp), softmax(si, 1.0));
            let kl: f64 = pt.iter().zip(&ps).map(|(a, b)| a * (a / b).ln()).sum();
            loss += (alpha * temp * temp * kl - (1.0 - alpha) * p1[yi].ln()) / n;
            grad.push(
                (0..si.len())
                    .map(|c| {
                        let onehot = if c == yi { 1.0 } else { 0.0 };
                        (alpha * temp * (ps[c] - pt[c]) + (1.0 - alpha) * (p1[c] - onehot)) / n
                    })
                    .collect(),
            );
        }
        (loss, grad)
    }

    #[test]
    fn loss_and_gradient_match_a_plain_reference() {
        let mut rng = SplitMix64::new(11);
        let (n, c) = (7, 5);
        let mut logits = |scale: f64| -> Vec<Vec<f64>> {
            (0..n)
                .map(|_| (0..c).map(|_| (rng.next_f64() - 0.5) * scale).collect())
                .collect()
        };
        let s = logits(6.0);
        let t = logits(12.0);
        let y: Vec<usize> = (0..n).map(|i| (i * 3) % c).collect();
        let to_tensor = |v: &[Vec<f64>]| {
            let flat: Vec<f32> = v.iter().flatten().map(|&x| x as f32).collect();
            Tensor::<TestAutodiff, 2>::from_data(TensorData::new(flat, [n, c]), &device())
        };
        for (temp, alpha) in [(1.0, 0.5), (4.0, 0.7), (8.0, 1.0), (2.0, 0.0)] {
            let (want_loss, want_grad) = reference(&s, &t, &y, temp, alpha);
            let student = to_tensor(&s).require_grad();
            let targets = Tensor::<TestAutodiff, 1, Int>::from_data(
                TensorData::new(y.iter().map(|&v| v as i64).collect::<Vec<_>>(), [n]),
                &device(),
            );
            let loss =
                distillation_loss(student.clone(), to_tensor(&t), targets, temp, alpha).total();
            let got: f32 = loss.clone().into_scalar();
            assert!(
                (got as f64 - want_loss).abs() < 1e-4 * want_loss.abs().max(1.0),
                "T={temp} α={alpha}: loss {got} vs {want_loss}"
            );
            let grads = loss.backward();
            let g: Vec<f32> = student.grad(&grads).unwrap().to_data().to_vec().unwrap();
            for (i, row) in want_grad.iter().enumerate() {
                for (j, want) in row.iter().enumerate() {
                    let got = g[i * c + j] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "T={temp} α={alpha} [{i},{j}]: grad {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_soft_term_is_zero_when_student_equals_teacher_and_keeps_its_scale_with_t() {
        let mut rng = SplitMix64::new(3);
        let v: Vec<f32> = (0..40)
            .map(|_| (rng.next_f64() * 8.0 - 4.0) as f32)
            .collect();
        let a = Tensor::<TestAutodiff, 2>::from_data(TensorData::new(v.clone(), [8, 5]), &device());
        let same: f32 = soft_target_loss(a.clone(), a.clone(), 4.0).into_scalar();
        assert!(same.abs() < 1e-6, "{same}");
        // Gradient magnitudes at T = 2 and T = 8 stay within an order of magnitude thanks to
        // T² (without it the T = 8 gradient would be 16x smaller still).
        let b = a.clone().flip([0]);
        let norm = |temp: f64| {
            let s = a.clone().require_grad();
            let g = soft_target_loss(s.clone(), b.clone(), temp).backward();
            let v: Vec<f32> = s.grad(&g).unwrap().to_data().to_vec().unwrap();
            v.iter().map(|x| (x * x) as f64).sum::<f64>().sqrt()
        };
        let ratio = norm(2.0) / norm(8.0);
        assert!(ratio > 0.25 && ratio < 8.0, "{ratio}");
    }
}
