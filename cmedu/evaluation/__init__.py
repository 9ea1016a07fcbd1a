"""Sample quality of image models (Sec. 6, Table 1 of Song et al. 2023): FID and Inception
Score with the standard Inception weights, LPIPS diversity, reference statistics and the
report of ``python -m cmedu evaluate``. Everything lives in ``cmedu.evaluation.fid``; the
names below are its public API."""

from ..distances import LPIPS_URLS
from ..runtime.weights import WeightsNotFoundError
from .fid import (
    EXTRACTOR,
    FID_LAYER,
    INCEPTION_FILE,
    INCEPTION_URL,
    IS_LAYER,
    IS_SPLITS,
    PAPER_CIFAR10,
    PAPER_N,
    PAPER_TWO_STEP_TAU,
    FeatureMoments,
    check_report_path,
    comparison_times,
    consistency_samples,
    evaluate,
    evaluate_model,
    extract,
    inception_score,
    inception_weights_file,
    load_consistency_model,
    load_inception,
    load_lpips,
    lpips_diversity,
    mean_lpips,
    reference_statistics,
    report_markdown,
    sample_size_note,
    stats_cache_dir,
    write_report,
)

__all__ = [
    "EXTRACTOR", "FID_LAYER", "INCEPTION_FILE", "INCEPTION_URL", "IS_LAYER", "IS_SPLITS",
    "LPIPS_URLS",
    "PAPER_CIFAR10", "PAPER_N", "PAPER_TWO_STEP_TAU",
    "FeatureMoments", "WeightsNotFoundError", "check_report_path", "comparison_times",
    "consistency_samples", "evaluate",
    "evaluate_model", "extract", "inception_score", "inception_weights_file",
    "load_consistency_model", "load_inception", "load_lpips", "lpips_diversity",
    "mean_lpips", "reference_statistics", "report_markdown", "sample_size_note",
    "stats_cache_dir", "write_report",
]  # fmt: skip
