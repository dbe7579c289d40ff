"""What GRPO gains over the imitation-trained model in lesson 7's experiment, over several seeds, and how long it takes.

Run: ``python -m benchmarks.bench_rl [--seeds 0 1 2] [--threads 2]``. For each seed it runs
``tfcourse experiment rl``'s CPU setting (:func:`tfcourse.experiments.reinforcement`) and prints
greedy exact-match accuracy on the digit counts GRPO trains on, before and after, the gain in
points, and the seconds of the whole run (imitation, GRPO and the evaluations). The target is a
gain of at least 15 points on every seed, within 5 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from tfcourse.experiments import reinforcement

TARGET_POINTS = 15
TARGET_SECONDS = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gains, seconds = [], []
    for seed in args.seeds:
        result = reinforcement(seed=seed, device="cpu")
        for n in result["rl_digits"]:
            i = result["digits"].index(n)
            before, after = 100 * result["before"][i], 100 * result["after"][i]
            gains.append(after - before)
            print(f"seed {seed}, {n} digits: {before:5.1f}% -> {after:5.1f}%  ({after - before:+.1f} points)")
        seconds.append(result["seconds"])
        print(f"  whole run {result['seconds']:.0f} s (imitation {result['imitation_steps']} steps, "
              f"{result['imitation_seconds']:.0f} s), {args.threads} threads")
    met = sum(gain >= TARGET_POINTS for gain in gains)
    print(f"{met} of {len(gains)} runs gain at least {TARGET_POINTS} points; median run "
          f"{statistics.median(seconds):.0f} s (target {TARGET_SECONDS} s)")


if __name__ == "__main__":
    main()
