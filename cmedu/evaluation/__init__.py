"""Sample quality of image models (Sec. 6, Table 1 of Song et al. 2023): FID and Inception
Score with the standard Inception weights, LPIPS diversity, reference statistics and the
report of ``python -m cmedu evaluate`` (``cmedu.evaluation.fid``); and the offline
yardstick, FD, KID and a classifier score in the features of a shipped CIFAR-10 classifier
(``cmedu.evaluation.classifier``), which are not FID, KID or IS. The names below are their
public API."""

from ..distances import LPIPS_URLS
from ..runtime.weights import WeightsNotFoundError
from .classifier import (
    CLASSIFIER,
    MEASURES,
    NOT_FID,
    Yardstick,
    classifier_measures,
    classifier_outputs,
    export_classifier,
    feature_fd,
    load_classifier,
    reference_features,
)
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
    "CLASSIFIER", "MEASURES", "NOT_FID", "Yardstick", "classifier_measures", "classifier_outputs",
    "export_classifier", "feature_fd", "load_classifier", "reference_features",
]  # fmt: skip
