#!/usr/bin/env python3
"""Optuna's TPE on optkit's sampler-benchmark functions (crates/opt-tune/src/bench/functions.rs).

Prints one JSON object: {"optuna": version, "runs": {function: {sampler: [[noise-free value per
trial] per seed]}}}. `optkit bench-samplers --optuna` runs this and scores the runs exactly as
its own (trials to reach random search's best of 100 with the same seed). Needs `pip install
optuna`; no network at run time.
"""
import argparse
import json
import math
import random

import optuna

H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
H_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def branin(x):
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x):
    return -sum(
        H_ALPHA[i] * math.exp(-sum(H_A[i][j] * (x[j] - H_P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


def quadratic(x):
    return sum((v - 1.0) ** 2 for v in x)


FUNCTIONS = {
    "branin": (branin, [(-5.0, 10.0), (0.0, 15.0)], 0.0),
    "hartmann6": (hartmann6, [(0.0, 1.0)] * 6, 0.0),
    "noisy-quadratic": (quadratic, [(-5.0, 5.0)] * 4, 0.5),
}


def run(name, multivariate, seed, trials):
    f, bounds, noise_sd = FUNCTIONS[name]
    noise = random.Random(seed)
    truth = []

    def objective(trial):
        x = [trial.suggest_float(f"x{i + 1}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        y = f(x)
        truth.append(y)
        return y + noise_sd * noise.gauss(0.0, 1.0)

    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=multivariate)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(objective, n_trials=trials)
    return truth


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=100)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs = {}
    for name in FUNCTIONS:
        runs[name] = {}
        for label, mv in [("optuna tpe (independent)", False), ("optuna tpe (multivariate)", True)]:
            runs[name][label] = [run(name, mv, s, args.trials) for s in range(args.seeds)]
    print(json.dumps({"optuna": optuna.__version__, "runs": runs}))


if __name__ == "__main__":
    main()
