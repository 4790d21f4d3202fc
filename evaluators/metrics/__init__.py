"""Quality metrics with uncertainty: FID and KID from features (a real image folder or a statistics
file), fidelity to the uncompressed model (SSIM, PSNR, LPIPS where available), the CLIP score, and
bootstrap intervals over images (paired with the uncompressed model on the same seeds).

`measure.QualityMeter` puts them together for one evaluation; `intervals` is the statistics.
"""

from evaluators.metrics.intervals import Interval, bootstrap, mean_interval, paired_bootstrap
from evaluators.metrics.measure import (
    QUALITY_OBJECTIVES,
    QualityMeter,
    QualityResult,
    check_feature_fits,
)

__all__ = ["QUALITY_OBJECTIVES", "Interval", "QualityMeter", "QualityResult", "bootstrap",
           "check_feature_fits", "mean_interval", "paired_bootstrap"]
