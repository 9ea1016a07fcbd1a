"""The course's exercises: every check passes on a correct solution and fails on planted
mistakes; the notebooks' own solutions pass; the student versions hold no solution and
report every exercise as not yet done; every solution cell is hidden in JupyterLab and on
the docs site."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from torch import nn

import cmedu
from cmedu import editing
from cmedu.course import exercises as ex
from cmedu.losses import ConsistencyTraining, DenoisingScoreMatching
from cmedu.score_estimation import edm_weight

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("exercises_script", ROOT / "scripts/exercises.py")
script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(script)


def _ema(theta_minus, theta, mu):
    target, online = nn.Linear(1, 1, bias=False), nn.Linear(1, 1, bias=False)
    target.weight, online.weight = nn.Parameter(theta_minus.clone()), nn.Parameter(theta)
    cmedu.ema_update(target, online, mu)
    return target.weight.detach()


def _multistep(f, x_T, taus, zs, eps=cmedu.EPS):
    x = f(x_T, taus[0])
    for tau, z in zip(taus[1:], zs):
        x = f(x + math.sqrt(tau**2 - eps**2) * z, tau)
    return x


def _edit_step(f, x, y, mask, t, z, eps=cmedu.EPS):
    return editing.impose(f(x + math.sqrt(t**2 - eps**2) * z, t), y, mask)


# Correct solutions, from cmedu wherever it has the function.
SOLUTIONS = {
    "gaussian_score": lambda x, m, s, t: cmedu.GaussianMixture(m[None], [s]).score(x, t),
    "pf_ode_velocity": cmedu.pf_ode_drift,
    "tweedie_denoiser": lambda score, x, t: cmedu.score_to_denoiser(score)(x, t),
    "unbiased_score": cmedu.unbiased_score_estimate,
    "edm_weight": edm_weight,
    "dsm_loss": lambda D, x, sigma, z, sd: (
        DenoisingScoreMatching(sigma_data=sd)(D, None, x, sigma=sigma, z=z).per_sample
    ),
    "karras_grid": cmedu.karras_timesteps,
    "euler_step": cmedu.euler_step,
    "heun_step": cmedu.heun_step,
    "c_skip_c_out": lambda t, sd, eps: (cmedu.c_skip(t, sd, eps), cmedu.c_out(t, sd, eps)),
    "consistency_model": lambda F, x, t: cmedu.ConsistencyModel(F, data_shape=(2,))(x, t),
    "cd_target": lambda D, x_next, t_next, t: cmedu.heun_step(D, x_next, t_next, t),
    "ema": _ema,
    "ct_target": lambda x, z, t: ConsistencyTraining(K=1).target_point(x, z, None, t, None),
    "ct_N": cmedu.ct_N,
    "ct_mu": cmedu.ct_mu,
    "ict_N": cmedu.ict_N,
    "ict_weight": cmedu.ict_weight,
    "lognormal_probs": cmedu.lognormal_index_probs,
    "pseudo_huber": cmedu.pseudo_huber,
    "multistep_sample": _multistep,
    "default_times": cmedu.default_times,
    "inpaint_replace": editing.impose,
    "edit_step": _edit_step,
    "slerp": editing.slerp,
}


def _raises(*args, **kw):
    raise ValueError("shapes do not match")


def _karras_off_by_one(N, eps, T, rho):
    i = torch.arange(N, dtype=torch.float64)
    return (eps ** (1 / rho) + i / N * (T ** (1 / rho) - eps ** (1 / rho))) ** rho


def _heun_d_prime_at_t_cur(D, x, t_cur, t_next):
    h = t_next - t_cur
    d = (x - D(x, t_cur)) / t_cur
    x_e = x + h * d
    return x + h * 0.5 * (d + (x_e - D(x_e, t_cur)) / t_cur)


def _euler_twice_half(D, x, t_cur, t_next):  # two half Euler steps: still first order
    mid = 0.5 * (t_cur + t_next)
    return cmedu.euler_step(D, cmedu.euler_step(D, x, t_cur, mid), mid, t_next)


def _consistency_model_without_c_in(F, x, t):
    t = torch.as_tensor(t, dtype=x.dtype)
    return cmedu.c_skip(t) * x + cmedu.c_out(t) * F(x, cmedu.c_noise(t).expand(x.shape[0]))


def _multistep_tau_noise(f, x_T, taus, zs, eps=cmedu.EPS):
    x = f(x_T, taus[0])
    for tau, z in zip(taus[1:], zs):
        x = f(x + tau * z, tau)
    return x


def _multistep_renoise_x_T(f, x_T, taus, zs, eps=cmedu.EPS):
    x = f(x_T, taus[0])
    for tau, z in zip(taus[1:], zs):
        x = f(x_T + math.sqrt(tau**2 - eps**2) * z, tau)
    return x


def _slerp_linear(z1, z2, alpha):
    return (1 - alpha) * z1 + alpha * z2


def _ict_N_doubling_from_zero(k, K, s0, s1):  # 2^(k/K') without the floor
    K_prime = math.floor(K / (math.log2(math.floor(s1 / s0)) + 1))
    return min(round(s0 * 2 ** (k / K_prime)), s1) + 1


# Planted mistakes: each must FAIL its check.
MISTAKES = {
    "gaussian_score": {
        "sign": lambda x, m, s, t: (x - m) / (s**2 + t**2),
        "variance s^2 + t": lambda x, m, s, t: (m - x) / (s**2 + t),
        "data variance only": lambda x, m, s, t: (m - x) / s**2,
    },
    "pf_ode_velocity": {
        "sign": lambda D, x, t: (D(x, t) - x) / t,
        "score, not velocity": lambda D, x, t: (D(x, t) - x) / t**2,
    },
    "tweedie_denoiser": {
        "t, not t^2": lambda s, x, t: x + t * s(x, t),
        "sign": lambda s, x, t: x - t**2 * s(x, t),
    },
    "unbiased_score": {
        "sign": lambda x_t, x0, t: (x_t - x0) / t**2,
        "divided by t": lambda x_t, x0, t: -(x_t - x0) / t,
    },
    "edm_weight": {
        "1/sigma^2": lambda sigma, sd: 1 / sigma**2,
        "denominator not squared": lambda sigma, sd: (sigma**2 + sd**2) / (sigma * sd),
    },
    "dsm_loss": {
        "no weight": lambda D, x, s, z, sd: (D(x + s[:, None] * z, s) - x).pow(2).mean(1),
        "sum, not mean": lambda D, x, s, z, sd: (
            edm_weight(s, sd) * (D(x + s[:, None] * z, s) - x).pow(2).sum(1)
        ),
        "compared with the noisy input": lambda D, x, s, z, sd: (
            edm_weight(s, sd) * (D(x + s[:, None] * z, s) - (x + s[:, None] * z)).pow(2).mean(1)
        ),
    },
    "karras_grid": {
        "descending": lambda N, eps, T, rho: cmedu.karras_timesteps(N, eps, T, rho).flip(0),
        "off by one": _karras_off_by_one,
        "no rho": lambda N, eps, T, rho: torch.linspace(eps, T, N, dtype=torch.float64),
        "one point short": lambda N, eps, T, rho: cmedu.karras_timesteps(N, eps, T, rho)[:-1],
        "float32": lambda N, eps, T, rho: cmedu.karras_timesteps(N, eps, T, rho).float(),
    },
    "euler_step": {
        "sign": lambda D, x, tc, tn: x - (tn - tc) * (x - D(x, tc)) / tc,
        "drift at t_next": lambda D, x, tc, tn: x + (tn - tc) * (x - D(x, tn)) / tn,
        "Heun for Euler": cmedu.heun_step,
    },
    "heun_step": {
        "Euler for Heun": cmedu.euler_step,
        "d' at t_cur": _heun_d_prime_at_t_cur,
        "two half Euler steps": _euler_twice_half,
    },
    "c_skip_c_out": {
        "unshifted EDM": lambda t, sd, eps: (cmedu.c_skip(t, sd, 0.0), cmedu.c_out(t, sd, 0.0)),
        "t - eps in c_out's denominator": lambda t, sd, eps: (
            cmedu.c_skip(t, sd, eps),
            sd * (t - eps) / (sd**2 + (t - eps) ** 2) ** 0.5,
        ),
        "swapped": lambda t, sd, eps: (cmedu.c_out(t, sd, eps), cmedu.c_skip(t, sd, eps)),
        "not a pair": lambda t, sd, eps: cmedu.c_skip(t, sd, eps),
    },
    "consistency_model": {
        "no c_in": _consistency_model_without_c_in,
        "F alone (Eq. (4) without the boundary)": lambda F, x, t: F(x, torch.zeros(len(x))),
    },
    "cd_target": {
        "Euler for Heun": lambda D, xn, tn, t: cmedu.euler_step(D, xn, tn, t),
        "wrong direction": lambda D, xn, tn, t: cmedu.heun_step(D, xn, t, tn),
        "returns x_next": lambda D, xn, tn, t: xn,
    },
    "ema": {
        "mu swapped": lambda tm, th, mu: (1 - mu) * tm + mu * th,
        "returns None": lambda tm, th, mu: None,
    },
    "ct_target": {
        "minus": lambda x, z, t: x - t[:, None] * z,
        "t^2": lambda x, z, t: x + t[:, None] ** 2 * z,
        "raises": _raises,
    },
    "ct_N": {
        "floor": lambda k, K, s0=2, s1=150: (
            math.floor(math.sqrt(k / K * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1
        ),
        "no +1": lambda k, K, s0=2, s1=150: cmedu.ct_N(k, K, s0, s1) - 1,
        "s1 in place of s1 + 1": lambda k, K, s0=2, s1=150: (
            math.ceil(math.sqrt(k / K * (s1**2 - s0**2) + s0**2) - 1) + 1
        ),
    },
    "ct_mu": {
        "code variant": lambda k, K, s0, s1, mu0: cmedu.ct_mu(k, K, s0, s1, mu0, "code"),
        "constant mu0": lambda k, K, s0, s1, mu0: mu0,
    },
    "ict_N": {
        "no +1": lambda k, K, s0, s1: cmedu.ict_N(k, K, s0, s1) - 1,
        "no floor": _ict_N_doubling_from_zero,
        "uncapped": lambda k, K, s0, s1: (
            s0 * 2 ** math.floor(k / math.floor(K / (math.log2(math.floor(s1 / s0)) + 1))) + 1
        ),
    },
    "ict_weight": {
        "sign": lambda t, tn: 1 / (t - tn),
        "step, not its inverse": lambda t, tn: tn - t,
    },
    "lognormal_probs": {
        "not normalised": lambda ts, pm, ps: (
            torch.erf((ts.log()[1:] - pm) / (2**0.5 * ps))
            - torch.erf((ts.log()[:-1] - pm) / (2**0.5 * ps))
        ),
        "N values (off by one)": lambda ts, pm, ps: torch.softmax(-((ts.log() - pm) ** 2), 0),
        "uniform": lambda ts, pm, ps: torch.full((len(ts) - 1,), 1 / (len(ts) - 1)),
        "no sqrt(2)": lambda ts, pm, ps: (
            torch.diff(torch.erf((ts.log() - pm) / ps))
            / torch.diff(torch.erf((ts.log() - pm) / ps)).sum()
        ),
    },
    "pseudo_huber": {
        "mean, not sum": lambda x, y, c: (x - y).flatten(1).pow(2).mean(1).add(c**2).sqrt() - c,
        "no - c": lambda x, y, c: (x - y).flatten(1).pow(2).sum(1).add(c**2).sqrt(),
        "per entry": lambda x, y, c: ((x - y) ** 2 + c**2).sqrt() - c,
    },
    "multistep_sample": {
        "noise tau, not sqrt(tau^2 - eps^2)": _multistep_tau_noise,
        "re-noises x_T": _multistep_renoise_x_T,
        "one step only": lambda f, x_T, taus, zs, eps=cmedu.EPS: f(x_T, taus[0]),
    },
    "default_times": {
        "with eps": lambda steps: cmedu.karras_timesteps(steps + 1).flip(0),
        "ascending": lambda steps: cmedu.default_times(steps).flip(0),
    },
    "inpaint_replace": {
        "mask inverted": lambda x, y, m: x * (1 - m) + y * m,
        "no replacement": lambda x, y, m: x,
    },
    "edit_step": {
        "no replacement": lambda f, x, y, m, t, z, eps: f(x + math.sqrt(t**2 - eps**2) * z, t),
        "noise t": lambda f, x, y, m, t, z, eps: editing.impose(f(x + t * z, t), y, m),
        "mask inverted": lambda f, x, y, m, t, z, eps: editing.impose(
            f(x + math.sqrt(t**2 - eps**2) * z, t), y, 1 - m
        ),
    },
    "slerp": {
        "linear": _slerp_linear,
        "normalised linear": lambda z1, z2, a: (
            _slerp_linear(z1, z2, a)
            / _slerp_linear(z1, z2, a).flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
            * z1.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        ),
    },
}


def test_every_exercise_has_a_solution_and_planted_mistakes():
    assert set(SOLUTIONS) == set(ex.EXERCISES) == set(MISTAKES)
    assert len(ex.EXERCISES) >= 20
    assert all(len(m) >= 2 for m in MISTAKES.values())


@pytest.mark.parametrize("name", sorted(ex.EXERCISES))
def test_check_passes_on_a_correct_solution(name):
    v = ex.verdict(name, SOLUTIONS[name])
    assert v.status == ex.PASS, v.line
    assert v.line.startswith("PASS  Exercise ")


@pytest.mark.parametrize(
    "name, mistake", [(n, m) for n in sorted(MISTAKES) for m in MISTAKES[n]], ids=str
)
def test_check_fails_on_a_planted_mistake(name, mistake):
    v = ex.verdict(name, MISTAKES[name][mistake])
    assert v.status == ex.FAIL, v.line
    assert v.line.startswith("FAIL  Exercise ") and "Traceback" not in v.line


@pytest.mark.parametrize(
    "name, mistake, hint",
    [
        ("karras_grid", "descending", "descending"),
        ("karras_grid", "off by one", "off by one"),
        ("karras_grid", "float32", "single precision"),
        ("heun_step", "Euler for Heun", "Euler step"),
        ("cd_target", "Euler for Heun", "Euler step"),
        ("ct_mu", "code variant", "official code"),
        ("c_skip_c_out", "t - eps in c_out's denominator", "denominator uses t"),
        ("inpaint_replace", "mask inverted", "inverted"),
        ("multistep_sample", "noise tau, not sqrt(tau^2 - eps^2)", "sqrt(tau_n^2 - eps^2)"),
        ("ema", "returns None", "return"),
    ],
)
def test_a_known_mistake_gets_its_own_hint(name, mistake, hint):
    assert hint in ex.verdict(name, MISTAKES[name][mistake]).line


def test_not_implemented_is_not_yet_done_and_any_error_is_one_line():
    def stub(*args, **kw):
        raise NotImplementedError()

    v = ex.verdict("karras_grid", stub)
    assert v.status == ex.NOT_DONE and "not yet done" in v.line
    v = ex.verdict("karras_grid", _raises)
    assert v.status == ex.FAIL and "ValueError: shapes do not match" in v.line
    assert "\n" not in v.line


def test_a_check_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    ex.verdict("ct_target", lambda x, z, t: x + torch.randn_like(x) * 0 + t[:, None] * z)
    ex.verdict("ema", MISTAKES["ema"]["mu swapped"])  # builds networks (random init)
    assert torch.equal(torch.rand(3), expected)


def test_check_prints_the_verdict(capsys):
    ex.check("ict_weight", cmedu.ict_weight)
    assert capsys.readouterr().out.startswith("PASS  Exercise 5.5")


def _exercise_cells(path: Path):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]


def test_the_notebooks_hold_every_exercise_once():
    names = []
    for path in NOTEBOOKS:
        for cell in _exercise_cells(path):
            names.append(cell.source.split("def ", 1)[1].split("(", 1)[0])
    assert sorted(names) == sorted(ex.EXERCISES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebooks_solutions_pass_their_checks(path):
    for cell in _exercise_cells(path):
        namespace = {"torch": torch, "cmedu": cmedu, "math": math, "np": np}
        exec(cell.source, namespace)
        name = cell.source.split("def ", 1)[1].split("(", 1)[0]
        assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        v = ex.verdict(name, namespace[name])
        assert v.status == ex.PASS, v.line


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_is_followed_by_its_check_with_a_stored_pass(path):
    cells = nbformat.read(path, as_version=4).cells
    for i, cell in enumerate(cells):
        if "exercise" in cell.metadata.get("tags", []):
            name = cell.source.split("def ", 1)[1].split("(", 1)[0]
            check = cells[i + 1]
            assert "exercise-check" in check.metadata.get("tags", [])
            assert f'exercises.check("{name}", {name})' in check.source
            text = "".join(o.get("text", "") for o in check.outputs)
            assert text.startswith("PASS  Exercise "), text


def _solution_cells(nb):
    return [
        c
        for c in nb.cells
        if {"solution", "exercise"} & set(c.metadata.get("tags", []))
        or c.metadata.get("nbgrader", {}).get("solution")
        or (c.cell_type == "code" and "Solution (click to reveal)" in c.source)
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_solution_is_hidden_in_jupyterlab_and_on_the_docs_site(path):
    nb = nbformat.read(path, as_version=4)
    for cell in _solution_cells(nb):
        assert cell.metadata.get("nbgrader", {}).get("solution"), cell.source[:60]
        if cell.cell_type == "markdown":
            assert cell.source.lstrip().startswith("<details>"), cell.source[:60]
            continue
        hidden = cell.metadata.get("jupyter", {})
        assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), cell.source[:60]
        assert "hide-cell" in cell.metadata.get("tags", []), cell.source[:60]


@pytest.fixture(scope="module")
def students(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return script.write_students(ROOT / "notebooks", out)


def test_the_student_versions_hold_no_solution_and_no_output(students):
    assert [p.name for p in students] == [p.name for p in NOTEBOOKS]
    for path in students:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source
            assert "Solution (click to reveal)" not in cell.source
            assert "<summary><b>Solution" not in cell.source
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None
        for cell in _solution_cells(nb):
            assert "jupyter" not in cell.metadata  # shown, to be filled in
            if "exercise" in cell.metadata.get("tags", []):
                assert "raise NotImplementedError()" in cell.source


def test_the_student_versions_run_and_report_every_exercise_not_yet_done(students):
    """The set-up, exercise and check cells of every student version run in one kernel (fast
    mode; about 20 s, most of it starting the kernel and importing torch), and every check
    prints "not yet done", without a traceback. The training cells are skipped: they use
    cmedu's implementations, none of the learner's functions."""
    nb = nbformat.v4.new_notebook(metadata=nbformat.read(students[0], as_version=4).metadata)
    for path in students:
        student = nbformat.read(path, as_version=4)
        nb.cells += [student.cells[i] for i in script.exercise_cells(student)]
    cells = script.execute_cells(nb, list(range(len(nb.cells))), students[0].parent, fast=True)
    checks = [c for c in cells if "exercise-check" in c.metadata.get("tags", [])]
    assert len(checks) == len(ex.EXERCISES)
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "not yet done" in text and "Traceback" not in text, text
