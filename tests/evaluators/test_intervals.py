"""Bootstrap intervals over images: coverage where the truth is known, and pairing on the same seeds."""

from __future__ import annotations

import pytest
import torch

from evaluators.metrics.intervals import Interval, bootstrap, mean_interval, paired_bootstrap

DRAWS = 300
PAIRED_DRAWS = 150


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    generator = torch.Generator().manual_seed(1)
    truth = 1.5
    hits = 0
    for _ in range(DRAWS):
        sample = truth + 2.0 * torch.randn(60, generator=generator, dtype=torch.float64)
        hits += mean_interval(sample, resamples=200).contains(truth)
    # percentile intervals of a mean at n = 60 cover a little under nominal; 300 draws: sd ~1.3%
    assert 0.89 <= hits / DRAWS <= 0.985


def test_paired_interval_covers_the_true_difference_and_is_far_narrower_than_unpaired():
    generator = torch.Generator().manual_seed(2)
    delta = 0.3
    hits, paired_widths, unpaired_widths = 0, [], []
    for _ in range(PAIRED_DRAWS):
        shared = 3.0 * torch.randn(60, generator=generator, dtype=torch.float64)  # what a seed fixes
        full = shared + 0.2 * torch.randn(60, generator=generator, dtype=torch.float64)
        plan = shared + delta + 0.2 * torch.randn(60, generator=generator, dtype=torch.float64)
        ci = paired_bootstrap(lambda i, p=plan: float(p[i].mean()),
                              lambda i, f=full: float(f[i].mean()), 60, resamples=100)
        hits += ci.contains(delta)
        paired_widths.append(ci.high - ci.low)
        unpaired_widths.append(mean_interval(plan).half_width + mean_interval(full).half_width)
    assert 0.87 <= hits / PAIRED_DRAWS <= 0.99  # 150 draws: sd ~1.8%
    assert sum(paired_widths) < 0.2 * sum(unpaired_widths)


def test_the_estimate_uses_every_image_and_the_interval_is_reproducible():
    values = torch.arange(10, dtype=torch.float64)
    a, b = mean_interval(values), mean_interval(values)
    assert a == b and a.estimate == pytest.approx(4.5)
    assert a.low < 4.5 < a.high
    assert Interval.from_dict(a.to_dict()) == a


def test_a_constant_statistic_has_a_zero_width_interval():
    ci = bootstrap(lambda idx: 7.0, 5)
    assert (ci.estimate, ci.low, ci.high) == (7.0, 7.0, 7.0)


@pytest.mark.parametrize("n", [0, 1])
def test_a_bootstrap_needs_two_images(n):
    with pytest.raises(ValueError, match="at least 2"):
        mean_interval(torch.ones(n))


def test_level_out_of_range_is_refused():
    with pytest.raises(ValueError, match="not in"):
        bootstrap(lambda idx: 0.0, 5, level=1.5)


def test_half_sample_interval_covers_the_true_mean_about_95_percent_of_the_time():
    from evaluators.metrics.intervals import half_sample

    generator = torch.Generator().manual_seed(3)
    hits = 0
    for _ in range(PAIRED_DRAWS):
        sample = -2.0 + torch.randn(64, generator=generator, dtype=torch.float64)
        ci = half_sample(lambda i, s=sample: float(s[i].mean()), 64, resamples=100)
        hits += ci.contains(-2.0)
        assert ci.estimate == pytest.approx(float(sample.mean()))
    assert 0.87 <= hits / PAIRED_DRAWS <= 0.99


@pytest.mark.parametrize("method", ["bootstrap", "half_sample"])
def test_one_image_per_class_still_gives_an_interval_of_positive_width(method):
    # 8 images cycling 10 classes: every stratum holds one image. Resampling within strata would
    # return the set itself every time (width 0, a bound any plan passes): the strata are dropped.
    from evaluators.metrics import intervals

    sample = torch.tensor([0.1, 2.0, -1.0, 0.5, 3.0, -2.0, 1.0, 0.0], dtype=torch.float64)
    ci = getattr(intervals, method)(lambda i: float(sample[i].mean()), 8, resamples=200,
                                    strata=list(range(8)))
    assert ci.high - ci.low > 0.5
    # two images per class are still resampled within classes: each class keeps its share
    strata = [k // 2 for k in range(8)]
    within = intervals.resample_indices(8, 50, strata=strata)
    assert all(sorted(int(i) // 2 for i in row) == [0, 0, 1, 1, 2, 2, 3, 3] for row in within)
