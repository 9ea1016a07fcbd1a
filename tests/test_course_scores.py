"""The course's exact measures of toy samples (``cmedu.course.plotting``)."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

import cmedu  # noqa: E402
from cmedu.course import plotting  # noqa: E402
from cmedu.metrics import log_density_threshold  # noqa: E402


def _setting(n=2000):
    data = cmedu.toy_data("8gaussians")
    reference = data.sample(n, torch.Generator().manual_seed(0), dtype=torch.float64)
    return data, reference, log_density_threshold(data, n=50_000)


def test_data_scores_sit_at_their_noise_floor():
    data, reference, threshold = _setting()
    rows = plotting.seed_scores(
        lambda seed: data.sample(2000, torch.Generator().manual_seed(10 + seed)),
        data, reference, threshold, seeds=(0, 1, 2),
    )  # fmt: skip
    assert abs(rows["energy"][0]) < 3e-3
    assert abs(rows["off_support"][0] - 0.01) < 0.01  # the threshold is the 1% quantile
    assert rows["mode_tv"][0] < 0.05
    assert all(sd >= 0 for _, sd in rows.values())


def test_bridges_and_dropped_modes_are_counted():
    data, reference, threshold = _setting()
    g = torch.Generator().manual_seed(1)
    angle = torch.rand(2000, generator=g, dtype=torch.float64) * 2 * torch.pi
    ring = torch.stack([angle.cos(), angle.sin()], 1)  # the modes joined by bridges
    one_mode = data.means[0] + 0.01 * torch.randn(2000, 2, generator=g, dtype=torch.float64)
    ring_scores = plotting.toy_scores(ring, data, reference, threshold)
    mode_scores = plotting.toy_scores(one_mode, data, reference, threshold)
    assert ring_scores["off_support"] > 0.15 and ring_scores["mode_tv"] < 0.05
    assert mode_scores["off_support"] < 0.02 and abs(mode_scores["mode_tv"] - 7 / 8) < 1e-3


def test_off_support_panel_marks_what_the_metric_counts():
    data, reference, threshold = _setting()
    x = torch.cat([data.sample(900, torch.Generator().manual_seed(2)), torch.zeros(100, 2)])
    fig, axes = plotting.sample_panels({"a": x}, reference, mixture=data, threshold=threshold)
    fraction = cmedu.metrics.off_support_fraction(x, data, threshold)
    assert fraction >= 0.1  # the 100 points at the origin, between the modes
    assert f"off-support {100 * fraction:.1f}%" in axes[0].get_title()
    table = plotting.score_table({"a": plotting.seed_scores(lambda s: x, data, reference,
                                                            threshold, seeds=(0, 1))})  # fmt: skip
    assert f"{100 * fraction:.1f}% ± 0.0" in table
    matplotlib.pyplot.close(fig)
