//! Multi-objective ranking: dominance, non-dominated sorting, crowding distance, and the
//! study's answer (the best trial, or the Pareto front of feasible complete trials).

use crate::objective::StudyDef;
use crate::trial::{Trial, TrialState};

/// Whether `a` dominates `b` (both minimized): no worse everywhere, better somewhere.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// The non-domination rank of every point (0 = on the front), points minimized.
pub fn ranks(points: &[Vec<f64>]) -> Vec<usize> {
    let n = points.len();
    let mut rank = vec![usize::MAX; n];
    let mut left: Vec<usize> = (0..n).collect();
    let mut r = 0;
    while !left.is_empty() {
        let front: Vec<usize> = left
            .iter()
            .copied()
            .filter(|&i| {
                !left
                    .iter()
                    .any(|&j| j != i && dominates(&points[j], &points[i]))
            })
            .collect();
        for &i in &front {
            rank[i] = r;
        }
        left.retain(|i| rank[*i] == usize::MAX);
        r += 1;
    }
    rank
}

/// Crowding distance of each point among `points` (boundary points infinite).
#[allow(clippy::needless_range_loop)] // `k` indexes the objectives inside every point
pub fn crowding(points: &[Vec<f64>]) -> Vec<f64> {
    let n = points.len();
    let mut dist = vec![0.0; n];
    let Some(m) = points.first().map(Vec::len) else {
        return dist;
    };
    for k in 0..m {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| points[a][k].total_cmp(&points[b][k]));
        let span = points[order[n - 1]][k] - points[order[0]][k];
        dist[order[0]] = f64::INFINITY;
        dist[order[n - 1]] = f64::INFINITY;
        if span > 0.0 {
            for w in 1..n.saturating_sub(1) {
                dist[order[w]] += (points[order[w + 1]][k] - points[order[w - 1]][k]) / span;
            }
        }
    }
    dist
}

/// A trial's objective values turned into quantities to minimize.
pub fn minimized(def: &StudyDef, trial: &Trial) -> Vec<f64> {
    def.objectives
        .iter()
        .zip(&trial.values)
        .map(|(o, v)| o.direction.minimized(*v))
        .collect()
}

/// The complete trials that meet every constraint (and have every objective's value).
pub fn complete_feasible<'a>(def: &StudyDef, trials: &'a [Trial]) -> Vec<&'a Trial> {
    trials
        .iter()
        .filter(|t| {
            t.state == TrialState::Complete
                && t.feasible()
                && t.values.len() == def.objectives.len()
        })
        .collect()
}

/// The feasible complete trials that no other feasible complete trial dominates, by number.
/// With one objective: the best trial (the earliest among ties).
pub fn front<'a>(def: &StudyDef, trials: &'a [Trial]) -> Vec<&'a Trial> {
    let done = complete_feasible(def, trials);
    let points: Vec<Vec<f64>> = done.iter().map(|t| minimized(def, t)).collect();
    if !def.is_multi_objective() {
        let best = (0..done.len()).min_by(|&a, &b| points[a][0].total_cmp(&points[b][0]));
        return best.map(|i| vec![done[i]]).unwrap_or_default();
    }
    let r = ranks(&points);
    let mut out: Vec<&Trial> = done
        .iter()
        .zip(&r)
        .filter(|(_, r)| **r == 0)
        .map(|(t, _)| *t)
        .collect();
    // Keep one trial per distinct point (the earliest), so ties do not inflate the front.
    out.sort_by_key(|t| t.number);
    let mut seen: Vec<Vec<f64>> = Vec::new();
    out.retain(|t| {
        let p = minimized(def, t);
        let new = !seen.contains(&p);
        seen.push(p);
        new
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objective::{Direction, Objective};
    use crate::space::SearchSpace;

    fn def(n: usize) -> StudyDef {
        let objectives = [
            ("accuracy", Direction::Maximize),
            ("latency_ms", Direction::Minimize),
        ]
        .iter()
        .take(n)
        .map(|(m, d)| Objective {
            metric: m.to_string(),
            direction: *d,
        })
        .collect();
        StudyDef {
            space: SearchSpace::default(),
            objectives,
            constraints: vec![],
            watch: 0,
        }
    }

    fn done(number: u64, values: &[f64], violation: f64) -> Trial {
        let mut t = Trial::new(number, TrialState::Complete, Default::default());
        t.values = values.to_vec();
        t.violations = vec![violation];
        t
    }

    #[test]
    fn ranks_peel_fronts() {
        let p = vec![
            vec![1.0, 4.0],
            vec![2.0, 2.0],
            vec![4.0, 1.0],
            vec![3.0, 3.0],
            vec![5.0, 5.0],
        ];
        assert_eq!(ranks(&p), vec![0, 0, 0, 1, 2]);
        let c = crowding(&p[..3]);
        assert!(c[0].is_infinite() && c[2].is_infinite() && c[1] == 2.0);
    }

    #[test]
    fn front_keeps_feasible_non_dominated_trials() {
        let d = def(2);
        let trials = vec![
            done(0, &[0.90, 3.0], -1.0),
            done(1, &[0.85, 1.0], -1.0),
            done(2, &[0.80, 2.0], -1.0), // dominated by 1
            done(3, &[0.95, 9.0], 4.0),  // infeasible
            done(4, &[0.92, 4.0], -1.0),
            done(5, &[0.92, 4.0], -1.0), // same point as 4
        ];
        let f: Vec<u64> = front(&d, &trials).iter().map(|t| t.number).collect();
        assert_eq!(f, vec![0, 1, 4]);
        let single: Vec<Trial> = trials
            .iter()
            .map(|t| done(t.number, &t.values[..1], t.violations[0]))
            .collect();
        let best: Vec<u64> = front(&def(1), &single).iter().map(|t| t.number).collect();
        assert_eq!(
            best,
            vec![4],
            "the earliest of two equal bests, the infeasible 0.95 left out"
        );
    }
}
