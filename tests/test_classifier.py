"""The offline yardstick (``cmedu.evaluation.classifier``): KID, FD and the classifier score
against closed forms; the plumbing with a tiny randomly initialised classifier on tiny
synthetic images (named so: no figure from it); the shipped classifier's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmedu.data.images import synthetic_shapes
from cmedu.evaluation import classifier as yardstick
from cmedu.metrics import classifier_score, kernel_distance, mmd2_unbiased
from cmedu.networks.classifier import CifarClassifier
from cmedu.training.pretrained import example_images

# ----------------------------------------------------------------------------------------
# KID: the unbiased MMD^2 of the cubic kernel, against its closed form for Gaussians


def expected_kernel(a, A, b, B) -> float:
    """E (X.Y / d + 1)^3 for independent X ~ N(a, A), Y ~ N(b, B), from the moments:
    E (X.Y)^k = <E X^{(x)k}, E Y^{(x)k}> (tensor powers), with the Gaussian moments
    E X_i X_j = A_ij + a_i a_j and E X_i X_j X_k = a_i a_j a_k + a_i A_jk + a_j A_ik + a_k A_ij."""
    d = len(a)

    def moments(m, S):
        second = S + np.outer(m, m)
        third = np.einsum("i,j,k->ijk", m, m, m)
        third = third + np.einsum("i,jk->ijk", m, S) + np.einsum("j,ik->ijk", m, S)
        return second, third + np.einsum("k,ij->ijk", m, S)

    (sa, ta), (sb, tb) = moments(a, A), moments(b, B)
    e1, e2, e3 = a @ b, (sa * sb).sum(), (ta * tb).sum()  # E (X.Y)^k, k = 1, 2, 3
    return 1 + 3 * e1 / d + 3 * e2 / d**2 + e3 / d**3


def closed_form_mmd2(a, A, b, B) -> float:
    """MMD^2 = E k(X, X') + E k(Y, Y') - 2 E k(X, Y) of the cubic kernel."""
    xx, yy, xy = (
        expected_kernel(a, A, a, A),
        expected_kernel(b, B, b, B),
        expected_kernel(a, A, b, B),
    )
    return xx + yy - 2 * xy


def biased_mmd2(x, y) -> float:
    """The V-statistic (diagonals kept), which overestimates MMD^2 at small samples."""
    k = lambda u, v: (u @ v.T / u.shape[1] + 1) ** 3  # noqa: E731
    return (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).item()


GAUSSIANS = {  # two small Gaussians in d = 2: (mean, covariance)
    "P": (np.array([0.5, -0.3]), np.array([[0.6, 0.2], [0.2, 0.4]])),
    "Q": (np.array([0.1, 0.2]), np.array([[0.3, -0.1], [-0.1, 0.5]])),
}


def draws(name, size, g):
    m, S = GAUSSIANS[name]
    L = torch.from_numpy(np.linalg.cholesky(S))
    return torch.from_numpy(m) + torch.randn(size, len(m), generator=g, dtype=torch.float64) @ L.T


@pytest.mark.parametrize("laws", [("P", "P"), ("P", "Q")])
def test_unbiased_mmd2_matches_the_closed_form_in_expectation_at_ten_samples(laws):
    g = torch.Generator().manual_seed(0)
    reps, m = 3000, 10
    pairs = [(draws(laws[0], m, g), draws(laws[1], m, g)) for _ in range(reps)]
    est = np.array([mmd2_unbiased(x, y) for x, y in pairs])
    exact = closed_form_mmd2(*GAUSSIANS[laws[0]], *GAUSSIANS[laws[1]])
    se = est.std() / np.sqrt(reps)
    assert abs(est.mean() - exact) < 4 * se, (est.mean(), exact, se)
    if laws[0] == laws[1]:
        assert exact == pytest.approx(0, abs=1e-12)
    # the test has power: the biased V-statistic of the same draws misses by many errors
    biased = np.array([biased_mmd2(x, y) for x, y in pairs])
    assert abs(biased.mean() - exact) > 10 * se


def test_kernel_distance_of_two_samples_of_one_law_scatters_around_zero():
    g = torch.Generator().manual_seed(1)
    values = [kernel_distance(draws("P", 200, g), draws("P", 200, g), subsets=5,
                              subset_size=100, generator=g)[0] for _ in range(200)]  # fmt: skip
    values = np.array(values)
    assert (values < 0).any() and (values > 0).any()  # unbiased: both signs occur
    assert abs(values.mean()) < 4 * values.std() / np.sqrt(len(values))


def test_kernel_distance_uses_subsets_of_the_smaller_sample_and_checks_dimensions():
    g = torch.Generator().manual_seed(2)
    x, y = draws("P", 30, g), draws("Q", 12, g)
    mean, std = kernel_distance(x, y, subsets=1, subset_size=1000, generator=g)
    # one subset of min(1000, 30, 12) = 12 rows: all of y, 12 rows of x
    assert np.isfinite(mean) and std == 0.0
    with pytest.raises(ValueError, match="expected samples of the dimension of x"):
        kernel_distance(x, torch.zeros(5, 3, dtype=torch.float64))


# ----------------------------------------------------------------------------------------
# FD and the classifier score


def test_feature_fd_of_gaussian_features_is_the_closed_form():
    """Features whose sample mean and covariance are exactly (a, A) and (b, B), with A and B
    sharing eigenvectors: FD = |a - b|^2 + sum_i (sqrt(alpha_i) - sqrt(beta_i))^2."""
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    alpha, beta = np.array([0.5, 1.0, 2.0, 0.1]), np.array([1.5, 0.2, 2.0, 0.4])
    a, b = rng.normal(size=4), rng.normal(size=4)

    def exact_moments(mean, cov, n=500):
        z = rng.normal(size=(n, 4))
        z = z - z.mean(0)
        z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # cov exactly I
        return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)

    x = exact_moments(a, Q @ np.diag(alpha) @ Q.T)
    y = exact_moments(b, Q @ np.diag(beta) @ Q.T)
    exact = ((a - b) ** 2).sum() + ((np.sqrt(alpha) - np.sqrt(beta)) ** 2).sum()
    assert yardstick.feature_fd(x, y) == pytest.approx(exact, rel=1e-9)
    assert yardstick.feature_fd(x, x) == pytest.approx(0, abs=1e-9)


def test_classifier_score_of_a_confident_classifier_spread_over_ten_classes_is_ten():
    labels = torch.arange(1000) % 10
    logits = 60.0 * torch.nn.functional.one_hot(labels, 10)
    assert classifier_score(logits)[0] == pytest.approx(10, rel=1e-6)


def test_classifier_score_of_a_constant_classifier_is_one():
    logits = torch.randn(1, 10).expand(500, 10)  # the same p(y|x) for every x
    assert classifier_score(logits)[0] == pytest.approx(1, abs=1e-12)
    one_class = 60.0 * torch.nn.functional.one_hot(torch.full((500,), 3), 10)
    assert classifier_score(one_class)[0] == pytest.approx(1, abs=1e-12)


# ----------------------------------------------------------------------------------------
# Plumbing with a tiny randomly initialised classifier (no figure from it)


@pytest.fixture(scope="module")
def tiny_random_classifier():
    torch.manual_seed(0)
    return CifarClassifier(widths=(4, 8, 8, 8)).eval()


def test_plumbing_with_a_tiny_random_classifier_on_synthetic_images(tiny_random_classifier):
    images = synthetic_shapes(40, resolution=16, seed=0).images  # uint8
    feats, logits = yardstick.classifier_outputs(tiny_random_classifier, images, batch_size=16)
    assert feats.shape == (40, 8) and logits.shape == (40, 10) and feats.dtype == torch.float64
    again, _ = yardstick.classifier_outputs(tiny_random_classifier, images.float() / 127.5 - 1)
    torch.testing.assert_close(again, feats)  # uint8 and [-1, 1] input agree
    ref = yardstick.classifier_outputs(tiny_random_classifier,
                                       synthetic_shapes(30, 16, seed=1).images)[0]  # fmt: skip
    m = yardstick.classifier_measures(feats, logits, ref, subsets=3, subset_size=20)
    assert set(m) == {"fd", "kid", "kid_std", "classifier_score"}
    assert all(np.isfinite(v) for v in m.values()) and 1 <= m["classifier_score"] <= 10


def test_plumbing_exported_tiny_random_classifier_loads_in_float32(
    tiny_random_classifier, tmp_path
):
    path = yardstick.export_classifier(tiny_random_classifier, tmp_path, {"test_accuracy": 0.1})
    net, meta = yardstick.load_classifier(tmp_path, with_info=True)
    assert path.name == yardstick.CLASSIFIER_FILE and meta == {"test_accuracy": 0.1}
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    assert next(net.parameters()).dtype == torch.float32 and not net.training
    torch.testing.assert_close(net(x), tiny_random_classifier(x), atol=2e-2, rtol=2e-2)


def test_mirror_average_is_the_mean_of_both_views_and_blind_to_mirroring(
    tiny_random_classifier, tmp_path
):
    net = CifarClassifier(widths=(4, 8, 8, 8), mirror=True).eval()
    net.load_state_dict(tiny_random_classifier.state_dict())
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        one, mirrored = (
            tiny_random_classifier.features(x),
            tiny_random_classifier.features(x.flip(-1)),
        )
        assert not torch.allclose(one, mirrored)  # the single view sees the mirror
        torch.testing.assert_close(net.features(x), (one + mirrored) / 2)
        torch.testing.assert_close(net(x), net(x.flip(-1)))
    yardstick.export_classifier(net, tmp_path)
    assert yardstick.load_classifier(tmp_path).mirror  # the setting travels with the weights


def test_a_missing_classifier_names_where_it_was_looked_for_and_how_to_train_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        yardstick.load_classifier(tmp_path / "nowhere")
    assert "scripts/train_classifier.py" in str(err.value)
    assert f"{yardstick.CLASSIFIER}/{yardstick.CLASSIFIER_FILE}" in str(err.value)


def test_the_measures_are_named_for_what_they_are_never_fid():
    names = " ".join(yardstick.MEASURES.values())
    assert "cmedu-classifier" in names and not any(
        w in names.split() for w in ("FID", "IS", "Inception")
    )
    assert "not FID" in yardstick.NOT_FID


# ----------------------------------------------------------------------------------------
# The shipped classifier


shipped = pytest.mark.skipif(
    not (yardstick.CHECKPOINTS / yardstick.CLASSIFIER / yardstick.CLASSIFIER_FILE).is_file(),
    reason="the classifier is not shipped in this checkout",
)


@shipped
def test_shipped_classifier_recognises_the_shipped_cifar10_test_images():
    net, meta = yardstick.load_classifier(with_info=True)
    images, labels = example_images(64)
    _, logits = yardstick.classifier_outputs(net, images)
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    assert accuracy >= 0.75, accuracy  # 64 of the 10,000 test images its card measured on
    assert meta["test_images"] == 10_000 and meta["test_accuracy"] >= 0.9  # the card's aim
    assert net.mirror and meta["test_accuracy_one_view"] < meta["test_accuracy"]
    assert {"recipe", "wall_s", "threads", "images_seen", "date"} <= set(meta)
    assert (yardstick.CHECKPOINTS / yardstick.CLASSIFIER / "MODEL_CARD.md").is_file()


@shipped
def test_yardstick_noise_uses_disjoint_real_sets_and_noise_images_score_far_above_it():
    net = yardstick.load_classifier()
    images = example_images(64)[0]
    reference = yardstick.classifier_outputs(net, images[:32])[0]
    stick = yardstick.Yardstick(net, reference, held_out=images[32:])
    noise = stick.noise(n=16, splits=5)
    assert len(noise) == 2  # 32 held-out images make two disjoint sets of 16
    assert noise[0]["fd"] != noise[1]["fd"]
    g = torch.Generator().manual_seed(0)
    static = torch.randint(0, 256, (16, 3, 32, 32), generator=g, dtype=torch.uint8)
    # at n = 16 FD is mostly its small-sample bias; the unbiased KID separates clearly
    assert stick.measure(static)["kid"] > 5 * max(abs(m["kid"]) for m in noise)
    assert stick.measure(static)["fd"] > max(m["fd"] for m in noise)
    with pytest.raises(ValueError, match="at least 40 held-out real images, got 32"):
        stick.noise(n=40)


@shipped
def test_yardstick_from_images_splits_at_random_across_a_class_ordered_folder():
    net = yardstick.load_classifier()
    images, labels = example_images(64)
    order = labels.argsort(stable=True)  # class by class, as an image folder lists them
    ordered, ordered_labels = images[order], labels[order]
    stick = yardstick.Yardstick.from_images(net, ordered, n_reference=40)
    assert len(stick.held_out) == 24 and stick.reference.shape[0] == 40
    # each held-out image is one of the folder's, and they come from both halves of it
    flat = ordered.flatten(1)
    index = [int((flat == x.flatten()).all(1).nonzero()[0]) for x in stick.held_out]
    assert len(set(index)) == 24 and min(index) < 32 <= max(index)
    assert len(set(ordered_labels[index].tolist())) > 5
    with pytest.raises(ValueError, match="n_reference = 64"):
        yardstick.Yardstick.from_images(net, ordered, n_reference=64)
