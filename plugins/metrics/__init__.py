"""Built-in metrics.

=====================  ===========================================  ==========================
name                   keys (direction)                             module
=====================  ===========================================  ==========================
``fid``                fid↓, kid_mean↓, kid_std↓                    ``fid``
``psnr``               psnr↑ (dB)                                   ``pixel``
``ssim``               ssim↑                                        ``pixel``
``l1``                 l1↓                                          ``pixel``
``classifier``         classifier_acc↑, classifier_acc_real↑        ``classifier``
``segmentation_miou``  miou↑ (%), pixel_acc↑ (%)                    ``segmentation``
=====================  ===========================================  ==========================

Every metric object follows :class:`vemkit_plugins.metrics.base.Metric` (``update``,
``compute``, ``reset``, ``higher_is_better``). Options live in the torch-free
:mod:`vemkit_plugins.metrics.options`; factories are imported only when a metric is built.
"""

from __future__ import annotations

_M = "vemkit_plugins.metrics"


def register(registry) -> None:
    """Add this package's components to ``registry``."""
    registry.add("metric", "fid", options=f"{_M}.options:FIDOptions", factory=f"{_M}.fid:build")
    registry.add(
        "metric", "psnr", options=f"{_M}.options:PSNROptions", factory=f"{_M}.pixel:build_psnr"
    )
    registry.add(
        "metric", "ssim", options=f"{_M}.options:SSIMOptions", factory=f"{_M}.pixel:build_ssim"
    )
    registry.add("metric", "l1", options=f"{_M}.options:L1Options", factory=f"{_M}.pixel:build_l1")
    registry.add(
        "metric",
        "classifier",
        options=f"{_M}.options:ClassifierOptions",
        factory=f"{_M}.classifier:build",
    )
    registry.add(
        "metric",
        "segmentation_miou",
        options=f"{_M}.options:SegmentationOptions",
        factory=f"{_M}.segmentation:build",
    )
