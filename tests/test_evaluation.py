"""FID, Inception Score and LPIPS (``cmedu.evaluation``, ``cmedu.metrics.frechet_distance``).

The maths is checked against closed forms and independent computations (scipy's sqrtm,
torch-fidelity's own FID and IS). Offline the Inception and LPIPS weights cannot be
downloaded, so the pipeline tests run a randomly initialised network and say so in their
names: they check shapes, caching, reports and errors, never a figure.
"""

from __future__ import annotations

import json
import math
import urllib.error
from dataclasses import asdict

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric

from cmedu import evaluation
from cmedu.cli import main
from cmedu.data.images import DatasetNotFoundError, to_uint8
from cmedu.evaluation import fid
from cmedu.metrics import frechet_distance
from cmedu.training import TrainConfig, build_model
from cmedu.training.checkpoint import save_checkpoint


def _spd(d: int, rng, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / (rank or d) + (0 if rank else 0.1 * np.eye(d))


# ----------------------------------------------------------------------------------------
# The Fréchet distance


def test_frechet_distance_of_identical_gaussians_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=20), _spd(20, rng)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9


def test_frechet_distance_of_a_shift_is_the_squared_mean_difference():
    rng = np.random.default_rng(1)
    mu1, mu2, sigma = rng.normal(size=20), rng.normal(size=20), _spd(20, rng)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(
        np.sum((mu1 - mu2) ** 2), rel=1e-9
    )


def test_frechet_distance_in_one_dimension_is_the_squared_w2_distance():
    # N(m1, s1^2), N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    d2 = frechet_distance([0.5], [[2.0**2]], [-1.0], [[0.5**2]])
    assert d2 == pytest.approx(1.5**2 + 1.5**2, rel=1e-12)


def test_frechet_distance_of_commuting_covariances_is_closed_form():
    # Same eigenvectors Q: Tr(S1 + S2 - 2 (S1 S2)^1/2) = sum (sqrt a - sqrt b)^2
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    a, b = rng.uniform(0.1, 3, 30), rng.uniform(0.1, 3, 30)
    mu1, mu2 = rng.normal(size=30), rng.normal(size=30)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_scaled_covariances_is_closed_form():
    # S2 = c^2 S1: Tr(S1) (1 - c)^2
    rng = np.random.default_rng(3)
    sigma, mu = _spd(25, rng), np.zeros(25)
    assert frechet_distance(mu, sigma, mu, 9 * sigma) == pytest.approx(
        4 * np.trace(sigma), rel=1e-9
    )


def test_frechet_distance_matches_scipy_sqrtm_and_torch_fidelity():
    # Independent computations: Tr sqrtm(S1 S2) (pytorch-fid's way) and torch-fidelity's
    # eigenvalues of S1 S2, for non-commuting covariances, full rank and rank-deficient.
    rng = np.random.default_rng(4)
    for rank in (None, 10):
        s1, s2 = _spd(40, rng, rank), _spd(40, rng)
        mu1, mu2 = rng.normal(size=40), rng.normal(size=40)
        tr = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
        scipy_value = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr
        stats1, stats2 = {"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}
        tf_value = fid_statistics_to_metric(stats1, stats2, False)["frechet_inception_distance"]
        ours = frechet_distance(mu1, s1, mu2, s2)
        assert ours == pytest.approx(scipy_value, rel=1e-7)
        assert ours == pytest.approx(tf_value, rel=1e-7)


def test_frechet_distance_is_symmetric_and_nonnegative():
    rng = np.random.default_rng(5)
    for _ in range(5):
        s1, s2, mu1, mu2 = _spd(15, rng), _spd(15, rng, 3), rng.normal(size=15), np.zeros(15)
        d12, d21 = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
        assert d12 == pytest.approx(d21, rel=1e-6) and d12 > 0  # sqrt of ~0 eigenvalues


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"means \(d,\) and covariances \(d, d\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_feature_moments_over_batches_equal_numpy_mean_and_covariance():
    rng = np.random.default_rng(6)
    x = rng.normal(5.0, 2.0, size=(103, 7)) @ rng.normal(size=(7, 7))
    moments = evaluation.FeatureMoments()
    for i in range(0, 103, 25):
        moments.add(torch.from_numpy(x[i : i + 25]).float())
    x32 = x.astype(np.float32).astype(np.float64)
    assert moments.n == 103
    np.testing.assert_allclose(moments.mu, x32.mean(0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(moments.sigma, np.cov(x32, rowvar=False), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------------------
# The Inception Score


def _confident(labels, K: int, scale: float = 60.0) -> torch.Tensor:
    return scale * torch.nn.functional.one_hot(torch.as_tensor(labels), K).double()


def test_inception_score_of_confident_balanced_classes_is_the_number_of_classes():
    # p(y|x) one-hot, p(y) uniform over K: KL = log K for every x, so IS = K
    logits = _confident(torch.arange(800) % 8, K=8)  # 10 splits of 80: 10 per class
    mean, std = evaluation.inception_score(logits)
    assert mean == pytest.approx(8.0, rel=1e-9) and std < 1e-9


def test_inception_score_of_one_class_or_of_uninformative_predictions_is_one():
    assert evaluation.inception_score(_confident([3] * 100, K=10))[0] == pytest.approx(1.0)
    assert evaluation.inception_score(torch.zeros(100, 10))[0] == pytest.approx(1.0)


def test_inception_score_of_a_two_class_mixture_is_two_exp_minus_entropy():
    # half the x have p(y|x) = (q, 1 - q), half (1 - q, q): p(y) = (1/2, 1/2),
    # KL = log 2 - H(q), IS = 2 exp(-H(q)) with H the binary entropy
    q = 0.8
    row = torch.tensor([math.log(q), math.log(1 - q)], dtype=torch.float64)
    logits = torch.stack([row, row.flip(0)] * 50)
    h = -(q * math.log(q) + (1 - q) * math.log(1 - q))
    assert evaluation.inception_score(logits, splits=1)[0] == pytest.approx(2 * math.exp(-h))


def test_inception_score_treats_zero_probabilities_as_zero_terms():
    # p(y|x) = 0 exactly (logit -inf): 0 log 0 = 0 in the KL, not nan
    logits = torch.log(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64))
    assert evaluation.inception_score(logits, splits=1)[0] == pytest.approx(2.0)


def test_inception_score_matches_torch_fidelity():
    logits = torch.randn(500, 1008, generator=torch.Generator().manual_seed(0)) * 3
    ours = evaluation.inception_score(logits, splits=10)
    theirs = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert ours[0] == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert ours[1] == pytest.approx(theirs["inception_score_std"], rel=1e-9)


# ----------------------------------------------------------------------------------------
# Missing weights: a clear error, never a silent fallback


def test_missing_inception_weights_raise_an_error_naming_file_folder_and_url(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(tfi, "load_state_dict_from_url", offline)
    with pytest.raises(evaluation.WeightsNotFoundError) as err:
        evaluation.load_inception()
    text = str(err.value)
    assert "weights-inception-2015-12-05-6726825d.pth" in text
    assert str(tmp_path / "hub" / "checkpoints") in text
    assert "https://github.com/toshas/torch-fidelity/releases/download/" in text
    assert "Name or service not known" in text


def test_missing_lpips_weights_raise_an_error_naming_file_folder_and_url(tmp_path, monkeypatch):
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(tvm.AlexNet_Weights.IMAGENET1K_V1, "get_state_dict", offline)
    with pytest.raises(evaluation.WeightsNotFoundError) as err:
        evaluation.load_lpips("alex")
    text = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in text and str(tmp_path / "hub" / "checkpoints") in text
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in text


# ----------------------------------------------------------------------------------------
# The pipeline, with a randomly initialised Inception (plumbing only: no figure from it)


class _RandomInception(FeatureExtractorInceptionV3):
    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None  # keep the random initialisation


@pytest.fixture(scope="module")
def random_inception(tmp_path_factory):
    empty = tmp_path_factory.mktemp("weights") / "empty.pt"
    torch.save({}, empty)
    torch.manual_seed(0)
    return _RandomInception("inception-v3-random", [evaluation.FID_LAYER, evaluation.IS_LAYER],
                            feature_extractor_weights_path=str(empty))  # fmt: skip


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """train/<class>/<image>.png: 6 random 16x16 RGB images in 2 classes."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(6):
        folder = root / "train" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, image_folder):
    """An untrained iCT model (U-Net "tiny", 16x16) saved as a run directory."""
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(data=str(image_folder), method="ict", net="tiny", steps=1).resolved()
    torch.manual_seed(0)
    state = build_model(cfg, (3, 16, 16)).state_dict()
    payload = {"ema": state, "online": state, "shape": [3, 16, 16], "dim": 768, "step": 0}
    save_checkpoint(out, payload, asdict(cfg))
    return out


def test_fid_plumbing_with_random_inception_features_caches_reference_statistics(
    random_inception, image_folder, tmp_path
):
    stats = evaluation.reference_statistics(random_inception, str(image_folder), cache_dir=tmp_path,
                                            batch_size=4, progress=False)  # fmt: skip
    assert stats["n"] == 6 and stats["mu"].shape == (2048,) and stats["sigma"].shape == (2048,) * 2
    (cached,) = tmp_path.glob("*.npz")
    assert cached.name.startswith(image_folder.name) and "inception-v3-random" in cached.name
    # the second call reads the cache (the images are not decoded again) ...
    cached_stats = evaluation.reference_statistics(random_inception, str(image_folder),
                                                   cache_dir=tmp_path)  # fmt: skip
    np.testing.assert_array_equal(cached_stats["sigma"], stats["sigma"])
    # ... which is keyed by dataset: another one is looked for, not served from it
    with pytest.raises(DatasetNotFoundError):
        evaluation.reference_statistics(random_inception, str(tmp_path / "other"),
                                        cache_dir=tmp_path)  # fmt: skip


def test_fid_plumbing_with_random_inception_features_gives_one_row_per_step_count(
    random_inception, run_dir
):
    model, shape, _, method = evaluation.load_consistency_model(str(run_dir))
    reference = {"mu": np.zeros(2048), "sigma": np.eye(2048) * 1e-12}
    times = [[80.0], [80.0, 0.821]]
    rows = evaluation.evaluate_model(model, shape, times, 4, reference, random_inception,
                                     batch_size=3, progress=False)  # fmt: skip
    assert [r["steps"] for r in rows] == [1, 2] and rows[1]["times"] == [80.0, 0.821]
    assert all(r["n"] == 4 and np.isfinite(r["fid"]) and r["is_mean"] >= 1 - 1e-9 for r in rows)


def test_default_times_are_the_papers_where_they_published_them():
    """Two steps at iCT's tau_1 = 0.821 and at CD's grid point t = 0.5853 (index 11 of the
    descending N = 18 grid of the CIFAR-10 CD code); elsewhere the Karras grid, said so."""
    assert evaluation.comparison_times("ict", 2)[0] == [80.0, 0.821]
    assert evaluation.comparison_times("cd", 2)[0] == [80.0, 0.5853]
    ct, why = evaluation.comparison_times("ct", 2)
    assert ct == pytest.approx([80.0, 2.5152], abs=1e-4) and "no published times" in why
    assert evaluation.comparison_times("ict", 1)[0] == [80.0]


@pytest.fixture(scope="module")
def tiny_random_classifier(tmp_path_factory):
    """A tiny randomly initialised classifier, to pass as --classifier (plumbing only)."""
    from cmedu.evaluation.classifier import export_classifier
    from cmedu.networks.classifier import CifarClassifier

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("classifier")
    export_classifier(CifarClassifier(widths=(4, 8, 8, 8)), out, {"test_accuracy": 0.1})
    return out


def test_cli_evaluate_plumbing_with_random_inception_features_reports_n(
    random_inception, run_dir, image_folder, tmp_path, monkeypatch, capsys, tiny_random_classifier
):
    monkeypatch.setattr(fid, "load_inception", lambda device="cpu": random_inception)
    monkeypatch.setenv("CMEDU_DATA", str(tmp_path / "data"))
    out = tmp_path / "report.json"
    main(["evaluate", "--checkpoint", str(run_dir), "--steps", "1,2", "--n", "3",
          "--data", str(image_folder), "--lpips-pairs", "0", "--batch-size", "2",
          "--device", "cpu", "--no-progress", "--out", str(out),
          "--classifier", str(tiny_random_classifier)])  # fmt: skip
    report = json.loads(out.read_text())
    assert report["n"] == 3 and [r["steps"] for r in report["rows"]] == [1, 2]
    assert report["reference"] == {"data": image_folder.name, "split": "train", "n": 6}
    assert "n = 3 samples per row, fewer than the papers' 50000" in report["note"]
    printed = capsys.readouterr().out
    assert "| steps (NFE) | times | n | FID | IS |" in printed
    assert "| 2 | 80, 0.821 | 3 |" in printed
    assert "tau_1 = 0.821, the papers' CIFAR-10 choice for ict" in report["note"]
    assert list((tmp_path / "data" / "fid-stats").glob("*inception-v3-random.npz"))
    # the cmedu-classifier measures, always beside FID, against the folder's images (no test/)
    assert all(set(r["classifier"]) == {"fd", "kid", "kid_std", "classifier_score"}
               for r in report["rows"])  # fmt: skip
    assert report["classifier"]["reference"] == {"data": image_folder.name, "split": "train",
                                                 "n": 6}  # fmt: skip
    assert "FD in cmedu-classifier features | KID in cmedu-classifier features" in printed
    assert "not FID" in printed and "FID and IS not measured" not in printed


def test_cli_evaluate_without_inception_weights_reports_the_classifier_measures_and_names_the_file(
    run_dir, image_folder, tmp_path, monkeypatch, capsys, tiny_random_classifier
):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(tfi, "load_state_dict_from_url", offline)
    main(["evaluate", "--checkpoint", str(run_dir), "--n", "2", "--data", str(image_folder),
          "--lpips-pairs", "0", "--no-progress", "--device", "cpu",
          "--classifier", str(tiny_random_classifier)])  # fmt: skip
    out = capsys.readouterr().out
    assert "| steps (NFE) | times | n | FD in cmedu-classifier features |" in out
    assert "FID and IS not measured" in out and evaluation.INCEPTION_FILE in out
    assert evaluation.INCEPTION_URL in out and str(tmp_path / "hub" / "checkpoints") in out


def test_cli_evaluate_without_the_classifier_exits_2_naming_it(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--checkpoint", str(run_dir), "--n", "2", "--lpips-pairs", "0",
              "--classifier", str(tmp_path / "none")])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "scripts/train_classifier.py" in err


def test_lpips_diversity_plumbing_with_random_backbone_is_zero_for_identical_pairs():
    from cmedu.distances import LPIPSDistance

    torch.manual_seed(0)
    lpips = LPIPSDistance(net="alex", random_backbone=True)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    same = torch.stack([x[0], x[0], x[1], x[1]])
    assert evaluation.lpips_diversity(same, lpips) == pytest.approx(0.0, abs=1e-6)
    assert evaluation.lpips_diversity(x, lpips) > 0
    assert evaluation.lpips_diversity(to_uint8(x), lpips) > 0
