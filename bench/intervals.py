"""How wide are the FID intervals against how much FID really moves between seed sets?

Real digits stand in for a generator whose truth is known: the reference set is half of each
class, and disjoint class-balanced sets of N images from the other half play the role of N
generated images on new seeds (the spec cycles the classes the same way). The spread of their FIDs
is the seed-set noise an interval should describe; each set's own 95% interval (stratified by
class) is compared with it, and the coverage of the mean FID over sets is counted.

    PYTHONPATH=$PWD python bench/intervals.py --images 64 --sets 12 --resamples 100
"""

from __future__ import annotations

import argparse

import torch

from evaluators.data import load_digits, to_unit
from evaluators.metrics.features import FrechetStatistic, RealStats, extract
from evaluators.metrics.intervals import bootstrap, half_sample
from evaluators.zoo import load_model
from evaluators.zoo.classifier import DigitsFeatures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--sets", type=int, default=12)
    parser.add_argument("--resamples", type=int, default=100)
    args = parser.parse_args()
    digits = load_digits()
    feats = extract(DigitsFeatures(load_model("digits-classifier")), to_unit(digits.images))
    generator = torch.Generator().manual_seed(0)
    by_class = [torch.nonzero(digits.labels == c).flatten() for c in range(10)]
    by_class = [members[torch.randperm(members.numel(), generator=generator)] for members in by_class]
    real = RealStats.from_features(feats[torch.cat([m[: m.numel() // 2] for m in by_class])])
    held = [m[m.numel() // 2:] for m in by_class]
    per_class = -(-args.images // 10)
    sets = min(args.sets, min(m.numel() for m in held) // per_class)
    strata = [k % 10 for k in range(args.images)]
    values, widths = [], {"half-sample": [], "bootstrap": []}
    intervals: dict[str, list] = {"half-sample": [], "bootstrap": []}
    for s in range(sets):
        idx = torch.tensor([int(held[k % 10][s * per_class + k // 10]) for k in range(args.images)])
        statistic = FrechetStatistic(feats[idx], real)
        values.append(statistic(torch.arange(args.images)))
        for name, method in (("half-sample", half_sample), ("bootstrap", bootstrap)):
            ci = method(statistic, args.images, resamples=args.resamples, strata=strata, seed=s)
            intervals[name].append(ci)
            widths[name].append(ci.half_width / 1.96)
    v = torch.tensor(values)
    print(f"{sets} disjoint class-balanced sets of {args.images} real digits, reference 898 digits")
    print(f"FID over sets: mean {v.mean():.2f}, sd {v.std():.2f}")
    print("| interval | sd implied by its width | width / true sd | sets whose interval holds the mean |")
    print("|---|---|---|---|")
    for name in widths:
        implied = sum(widths[name]) / sets
        held_mean = sum(ci.contains(float(v.mean())) for ci in intervals[name])
        print(f"| {name} | {implied:.2f} | {implied / float(v.std()):.2f} | {held_mean}/{sets} |")


if __name__ == "__main__":
    main()
