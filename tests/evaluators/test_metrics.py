"""The quality metrics for real models: FID/KID from features and statistics files, SSIM/PSNR
fidelity, the CLIP score's offline errors, the feature-space mismatch, and QualityMeter."""

from __future__ import annotations

import json

import pytest
import torch

from evaluators.data import to_unit
from evaluators.errors import EvaluatorError
from evaluators.metrics import QualityMeter, check_feature_fits
from evaluators.metrics.clip import ClipScorer
from evaluators.metrics.features import (
    FrechetStatistic,
    RealStats,
    extract,
    frechet,
    kernel_distance,
    kid_statistic,
)
from evaluators.metrics.fidelity import (
    PSNR_CAP_DB,
    fidelity_loss,
    lpips_per_image,
    psnr_per_image,
    ssim_per_image,
)
from evaluators.quality import FIDScorer
from evaluators.zoo.classifier import DigitsFeatures


@pytest.fixture(scope="module")
def feature(classifier):
    return DigitsFeatures(classifier)


@pytest.fixture(scope="module")
def real(feature, digits):
    return RealStats.from_features(extract(feature, to_unit(digits.images[:900])))


def noisy(images: torch.Tensor, scale: float, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (images + scale * torch.randn(images.shape, generator=generator)).clamp(0, 1)


# --- FID and KID from features -------------------------------------------------------------------

def test_fid_from_features_is_torchmetrics_fid(feature, real, digits):
    reference = to_unit(digits.images[:900])
    images = noisy(to_unit(digits.images[900:1000]), 0.2)
    expected = FIDScorer(feature, reference).score(images)
    feats = extract(feature, images)
    assert frechet(feats, real) == pytest.approx(expected, rel=1e-4)
    assert FrechetStatistic(feats, real)(torch.arange(100)) == pytest.approx(expected, rel=1e-4)


def test_the_fast_statistic_matches_torchmetrics_with_fewer_images_than_features():
    generator = torch.Generator().manual_seed(0)
    real = RealStats.from_features(torch.randn(300, 96, generator=generator, dtype=torch.float64))
    fake = 1.2 * torch.randn(40, 96, generator=generator, dtype=torch.float64) + 0.1
    assert FrechetStatistic(fake, real)(torch.arange(40)) == pytest.approx(frechet(fake, real), rel=1e-6)


def test_statistics_files_round_trip_and_agree_with_the_fid_state(tmp_path, feature, real, digits):
    scorer = FIDScorer(feature, to_unit(digits.images[:900]))
    from_state = RealStats.from_fid_state(scorer.reference_state())
    assert torch.allclose(from_state.mean, real.mean) and torch.allclose(from_state.cov, real.cov)
    for name in ("stats.npz", "stats.safetensors"):
        loaded = RealStats.load(real.save(tmp_path / name))
        assert torch.allclose(loaded.mean, real.mean) and torch.allclose(loaded.cov, real.cov)
        assert (loaded.features is not None) == name.endswith("safetensors")
    state = RealStats.load(tmp_path / "stats.npz").fid_state()
    assert torch.allclose(state["real_features_cov_sum"], scorer.reference_state()["real_features_cov_sum"])


def test_a_missing_or_damaged_statistics_file_is_one_line(tmp_path):
    with pytest.raises(EvaluatorError, match="does not exist: give a .npz with 'mu' and 'sigma'"):
        RealStats.load(tmp_path / "absent.npz")
    import numpy as np

    np.savez(tmp_path / "wrong.npz", mean=np.zeros(3))
    with pytest.raises(EvaluatorError, match="lacks 'mu'"):
        RealStats.load(tmp_path / "wrong.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(EvaluatorError, match="cannot read reference statistics file"):
        RealStats.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "skew.npz", mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(EvaluatorError, match="sigma is"):
        RealStats.load(tmp_path / "skew.npz")


def test_statistics_of_another_feature_space_are_refused(real):
    with pytest.raises(EvaluatorError, match="128-dimensional features but the feature network gives 2048"):
        real.check_dimension(2048, "stats.npz")


def test_kid_is_near_zero_for_real_digits_and_grows_with_noise(feature, real, digits):
    same, _ = kernel_distance(extract(feature, to_unit(digits.images[900:1100])), real)
    worse, _ = kernel_distance(extract(feature, noisy(to_unit(digits.images[900:1100]), 0.3)), real)
    assert abs(same) < worse / 3  # other writers than the reference set: not quite 0
    feats = extract(feature, to_unit(digits.images[900:964]))
    assert kid_statistic(feats, real)(torch.arange(64)) == pytest.approx(
        kid_statistic(feats, real)(torch.arange(64)))


def test_kid_without_real_features_names_the_fix(real):
    stats_only = RealStats(real.mean, real.cov, real.count)
    with pytest.raises(EvaluatorError, match="KID needs the real images' features"):
        kernel_distance(torch.zeros(4, 128, dtype=torch.float64), stats_only)


# --- fidelity ------------------------------------------------------------------------------------

def test_ssim_and_psnr_per_image(digits):
    images = to_unit(digits.images[:8])
    assert torch.allclose(ssim_per_image(images, images), torch.ones(8, dtype=torch.float64))
    assert torch.all(psnr_per_image(images, images) == PSNR_CAP_DB)
    slightly, badly = noisy(images, 0.05), noisy(images, 0.3)
    assert torch.all(ssim_per_image(images, badly) < ssim_per_image(images, slightly))
    assert torch.all(psnr_per_image(images, badly) < psnr_per_image(images, slightly))
    assert torch.allclose(fidelity_loss(images, slightly), 1 - ssim_per_image(images, slightly))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_per_image(images, images[:4])


def test_lpips_without_torchvision_names_ssim():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(EvaluatorError, match="use --fidelity ssim"):
            lpips_per_image(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    else:
        pytest.skip("torchvision is installed here: LPIPS is available")


def test_an_unknown_fidelity_metric_names_the_choices():
    with pytest.raises(EvaluatorError, match="use one of ssim, lpips"):
        fidelity_loss(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16), "mse")


# --- CLIP ----------------------------------------------------------------------------------------

def test_clip_without_its_weights_names_the_folder_to_copy(tmp_path):
    with pytest.raises(EvaluatorError, match=f"CLIP model folder '{tmp_path / 'clip'}' does not exist: copy"):
        ClipScorer(tmp_path / "clip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvaluatorError, match="has no config.json: copy a CLIP model"):
        ClipScorer(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(EvaluatorError, match="cannot load the CLIP model in .*broken"):
        ClipScorer(tmp_path / "broken")


# --- the feature space and the meter ------------------------------------------------------------

def test_digits_features_on_another_model_is_an_error_naming_the_options():
    with pytest.raises(EvaluatorError, match="--feature inception .*--quality fidelity"):
        check_feature_fits("fid", "digits", digits_model=False, model="facebook/DiT-XL-2-256")
    check_feature_fits("fidelity", "digits", digits_model=False, model="facebook/DiT-XL-2-256")
    check_feature_fits("fid", "inception", digits_model=False, model="facebook/DiT-XL-2-256")
    check_feature_fits("kid", "digits", digits_model=True, model="digits-dit")


def test_the_meter_reads_zero_difference_for_the_baseline_and_a_paired_interval_for_a_plan(
        feature, real, digits):
    full = to_unit(digits.images[1000:1064])
    meter = QualityMeter("fid", feature=feature, real=real, resamples=100)
    meter.set_baseline(full)
    same = meter.measure(full)
    assert same.delta.estimate == pytest.approx(0, abs=1e-9)
    assert same.delta.low == pytest.approx(0, abs=1e-9) and same.delta.high == pytest.approx(0, abs=1e-9)
    assert same.metrics["fidelity"].estimate == pytest.approx(0, abs=1e-9)
    # a plan's error follows its seed's image: dimmer digits
    worse = meter.measure(full * 0.7, conditions=digits.labels[1000:1064].tolist())
    assert worse.value.low <= worse.value.estimate <= worse.value.high
    assert 0 < worse.delta.low <= worse.delta.estimate <= worse.delta.high
    # pairing on the same seeds: the difference is known far better than the FID itself
    assert worse.delta.high - worse.delta.low < (worse.value.high - worse.value.low)
    assert {"fid", "kid", "psnr", "ssim", "fidelity"} <= set(worse.metrics)
    screen = meter.measure(noisy(full[:16], 0.4), distribution=False)
    assert screen.value is None and "fid" not in screen.metrics and "psnr" in screen.metrics
    restored = type(worse).from_dict(json.loads(json.dumps(worse.to_dict())))
    assert restored == worse


def test_the_fidelity_objective_needs_no_reference_set(digits):
    full = to_unit(digits.images[:32])
    meter = QualityMeter("fidelity", resamples=50)
    meter.set_baseline(full)
    result = meter.measure(noisy(full, 0.1))
    assert result.value == result.delta and result.value.estimate > 0
    assert "fid" not in result.metrics
    with pytest.raises(EvaluatorError, match="needs a reference image set .*fidelity needs neither"):
        QualityMeter("fid")
    with pytest.raises(EvaluatorError, match="unknown quality objective 'lpips'"):
        QualityMeter("lpips")
