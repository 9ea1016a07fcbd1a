"""The consistency-function explorer (``cmedu.course.widgets.ConsistencyFunctionExplorer``):
its exact f* against the trajectories it is drawn on, its snapshots against a fresh run,
the error panel against f_theta recomputed here, and its controls (live and headless)."""

from __future__ import annotations

import copy
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import cmedu  # noqa: E402
from cmedu.course import widgets  # noqa: E402

STEPS = 24  # CD steps of each run: snapshots at 2, 3, 6, 12, 24


@pytest.fixture(scope="module")
def explorer():
    data = cmedu.toy_data("8gaussians")
    return widgets.ConsistencyFunctionExplorer(
        data, Ns=(3, 6, 18), steps=STEPS, n_paths=3, n_times=12, progress=False, device="cpu"
    )


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_doubling_snapshots_end_at_the_last_step():
    assert widgets.doubling_snapshots(3000) == [188, 375, 750, 1500, 3000]
    assert widgets.doubling_snapshots(3) == [1, 2, 3]


def test_trajectories_are_exact_and_end_at_distinct_modes(explorer):
    paths, ts = explorer.paths, explorer.ts
    assert ts[0] == cmedu.T and ts[-1] == cmedu.EPS and bool((ts[1:] < ts[:-1]).all())
    again = cmedu.reference_pf_ode(paths[0], cmedu.toy_data("8gaussians"), ts)
    torch.testing.assert_close(again, paths, rtol=0, atol=1e-6)
    modes = torch.cdist(paths[-1], cmedu.toy_data("8gaussians").means).argmin(1)
    assert len(set(modes.tolist())) == paths.shape[1]


def test_exact_f_star_is_constant_along_a_trajectory_and_equals_its_end(explorer):
    # f* at each (x_t, t) is its own scipy solve from t down to eps, not read off the path.
    f_star, ends = explorer.f_star, explorer.paths[-1].numpy()
    assert np.abs(f_star - ends).max() < 1e-6
    assert np.abs(f_star - f_star[0]).max() < 1e-6  # the same point at every t
    # ... while the trajectory itself moves: the check is not trivially true.
    assert np.linalg.norm(explorer.paths[-4].numpy() - ends, axis=-1).min() > 0.05


def test_a_snapshot_is_the_evaluation_ema_of_that_step(explorer):
    step = explorer.snapshots[2]
    cfg = cmedu.TrainConfig.preset("course-toy", "cd", N=6, steps=STEPS)
    trainer = cmedu.Trainer(cfg, device="cpu", data=cmedu.toy_data("8gaussians"))
    for state in trainer.steps(progress=False):
        if state.step == step:
            break
    for name, value in trainer.ema.state_dict().items():
        torch.testing.assert_close(explorer.weights[6, step][name], value)


def test_error_panel_shows_the_chosen_snapshot(explorer):
    path, N, step = 1, 6, explorer.snapshots[3]
    net = copy.deepcopy(explorer.nets[N])
    net.load_state_dict(explorer.weights[N, step])
    with torch.no_grad():
        f = torch.stack([net(x, t) for x, t in zip(explorer.paths, explorer.ts)])[:, path]
    expected = (f - explorer.paths[-1, path]).norm(dim=-1).numpy()[:-1]  # t = eps: 0, not drawn
    fig = explorer.draw(path=path, N=N, step=step)
    (line,) = [ln for ln in fig.axes[1].get_lines() if ln.get_gid() == "chosen"]
    np.testing.assert_allclose(line.get_xdata(), explorer.ts.numpy()[:-1])
    np.testing.assert_allclose(line.get_ydata(), expected, rtol=0, atol=1e-6)  # f*: tol 1e-9
    other = explorer.errors[N, explorer.snapshots[-1]][:-1, path]
    assert np.abs(other - expected).max() > 1e-3  # another snapshot would draw another curve
    plt.close(fig)


def test_f_theta_is_exact_at_eps_for_every_snapshot(explorer):
    for key, err in explorer.errors.items():
        assert err[-1].max() < 1e-12, key  # the boundary condition, Eq. (5)


def test_every_control_changes_the_figure(explorer):
    base = dict(path=0, N=6, step=explorer.snapshots[-2])
    before = png(explorer.draw(**base))
    for change in (dict(path=1), dict(N=18), dict(step=explorer.snapshots[-1])):
        assert png(explorer.draw(**{**base, **change})) != before, change


def test_headless_show_draws_the_default_setting_as_a_static_figure(explorer, monkeypatch):
    monkeypatch.setenv("CMEDU_HEADLESS", "1")
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    monkeypatch.setattr(widgets, "_display", lambda ui: pytest.fail("headless built a UI"))
    assert explorer.show() is None
    (fig,) = shown
    title = fig.axes[0].get_title()
    assert f"N = 6, step {explorer.snapshots[-2]} of {STEPS}" in title
    plt.close(fig)


def _live_show(explorer, monkeypatch):
    """The explorer's live UI, with each redraw recorded (its keyword arguments) in calls."""
    monkeypatch.setenv("CMEDU_HEADLESS", "0")
    monkeypatch.setenv("CMEDU_LIVE", "1")
    monkeypatch.setattr(widgets, "_display", lambda ui: ui)
    calls = []
    monkeypatch.setattr(explorer, "draw", lambda **kw: calls.append(kw))
    return explorer.show(), calls


def test_live_show_redraws_when_a_slider_moves(explorer, monkeypatch):
    ui, calls = _live_show(explorer, monkeypatch)
    sliders = {c.description: c for c in ui.children[0].children + (ui.children[1],)}
    assert set(sliders) == {"trajectory", "N", "step"}
    for name, slider in sliders.items():  # every slider can move right (the browser test)
        options = slider.options if hasattr(slider, "options") else range(slider.max + 1)
        assert list(options).index(slider.value) < len(options) - 1, name
    sliders["N"].value = 18
    assert calls[-1] == dict(path=0, N=18, step=explorer.snapshots[-2])
    sliders["step"].value = explorer.snapshots[-1]
    assert calls[-1] == dict(path=0, N=18, step=explorer.snapshots[-1])


def test_table_gives_the_mean_error_of_every_run_and_snapshot(explorer):
    lines = explorer.table().splitlines()
    assert lines[1].split()[1:] == [str(s) for s in explorer.snapshots]
    row = lines[2 + explorer.Ns.index(6)].split()
    assert row[:3] == ["N", "=", "6"]
    for s, value in zip(explorer.snapshots, row[3:]):
        assert float(value) == pytest.approx(explorer.errors[6, s][:-1].mean(), abs=6e-4)


class _ExactAverageVelocity(torch.nn.Module):
    """The exact u(z, r, t) of a mixture as a model, optionally shifted by ``bias``."""

    def __init__(self, mixture, bias=0.0):
        super().__init__()
        self.mixture, self.bias = mixture, bias
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, z, r, t):
        from cmedu.interpolants import average_velocity, linear

        return average_velocity(self.mixture, linear(), z, r, t, rtol=1e-9) + self.bias


@pytest.fixture(scope="module")
def u_explorers():
    mix = cmedu.toy_data("8gaussians")
    kw = dict(ts=(0.5, 1.0), fractions=(0.0, 1.0), n=5, progress=False)
    exact = widgets.AverageVelocityExplorer(mix, _ExactAverageVelocity(mix), **kw)
    biased = widgets.AverageVelocityExplorer(mix, _ExactAverageVelocity(mix, 0.1), **kw)
    return exact, biased


def test_average_velocity_explorer_measures_the_error_against_the_exact_u(u_explorers):
    """The exact u as the model gives errors at the solver's tolerance, for every (t, r);
    a shift by 0.1 in each coordinate gives sum ||0.1 (1, 1)|| / sum ||u||."""
    exact, biased = u_explorers
    assert max(exact.errors.values()) < 1e-6
    for (t, f), err in biased.errors.items():
        u = exact.exact[t, f]
        expected = len(u) * 0.1 * np.sqrt(2) / np.linalg.norm(u, axis=1).sum()
        assert err == pytest.approx(expected, rel=1e-5)


def test_average_velocity_at_r_equal_t_is_the_instantaneous_velocity(u_explorers):
    from cmedu.interpolants import linear, velocity

    exact, _ = u_explorers
    v = velocity(exact_mixture(), linear(), exact.z, 0.5).numpy()
    np.testing.assert_allclose(exact.exact[0.5, 1.0], v, atol=1e-12)


def exact_mixture():
    return cmedu.toy_data("8gaussians")


def test_average_velocity_explorer_draws_each_setting_and_outlines_it(u_explorers, monkeypatch):
    exact, _ = u_explorers
    fig = exact.draw(t=0.5, fraction=1.0)
    field, grid = fig.axes[:2]
    assert "t = 0.5" in field.get_title() and "one step" not in field.get_title()
    assert len(field.collections) == 3  # data, exact arrows, learned arrows
    (outline,) = grid.patches
    assert outline.get_xy() == (-0.5, 0.5)  # column t = 0.5, row r / t = 1
    assert "one step" in exact.draw().axes[0].get_title()
    plt.close("all")
    monkeypatch.setattr(widgets, "is_live", lambda: False)
    monkeypatch.setattr(plt, "show", lambda: None)
    assert exact.show() is None
    plt.close("all")


def test_average_velocity_explorer_live_sliders_redraw(u_explorers, monkeypatch):
    ui, calls = _live_show(u_explorers[0], monkeypatch)
    sliders = {c.description: c for c in ui.children[0].children}
    assert set(sliders) == {"t", "r / t"}
    for name, slider in sliders.items():  # every slider can move right (the browser test)
        assert list(slider.options).index(slider.value) == 0, name
    assert calls[-1] == dict(t=1.0, fraction=0.0)  # the one-step setting first
    sliders["t"].value = 0.5
    assert calls[-1] == dict(t=0.5, fraction=0.0)
    sliders["r / t"].value = 1.0
    assert calls[-1] == dict(t=0.5, fraction=1.0)
