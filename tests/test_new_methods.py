"""ECT, sCM and MeanFlow against exact ground truth on Gaussian mixtures (cmedu.interpolants):
the closed forms against autograd and the EDM reference solver, each objective zero at the
exact solution and positive off it, the JVP tangents against finite differences, each
one-step sampler with the exact function reproducing the data (KS test), short trainings
lowering the loss, and the one loop training, resuming and sampling each method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cmedu import interpolants as I
from cmedu.constants import EPS, SIGMA_DATA
from cmedu.losses import EasyConsistencyTraining
from cmedu.meanflow import MeanFlowLoss, meanflow_sample, meanflow_target, sample_time_pair
from cmedu.metrics import energy_distance
from cmedu.parameterization import AverageVelocityModel, TrigFlowModel, trigflow_T
from cmedu.schedules import ect_r, truncated_lognormal
from cmedu.solvers import reference_pf_ode
from cmedu.toys import GaussianMixture, eight_gaussians
from cmedu.training import TrainConfig, Trainer, load_run
from cmedu.trigflow import (
    ContinuousConsistencyLoss,
    consistency_tangent,
    teacher_velocity,
    trigflow_sample,
)

F64 = torch.float64
TRIG, LIN = I.trigflow(), I.linear()


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mix():
    return eight_gaussians()


def line_mixture() -> GaussianMixture:
    """A 1D mixture with unequal weights and widths, for the KS tests."""
    return GaussianMixture([[-0.6], [0.2], [0.7]], [0.1, 0.05, 0.15], [0.5, 0.2, 0.3])


def line_cdf(m: GaussianMixture, x: np.ndarray) -> np.ndarray:
    w, mu, s = m.weights.numpy(), m.means[:, 0].numpy(), m.stds.numpy()
    return (w * stats.norm.cdf((x[:, None] - mu) / s)).sum(1)


def edm_flow(m, x, sigma_from, sigma_to):
    """The EDM PF-ODE (Song et al. 2023, Eq. (3)) from sigma_from to sigma_to, through the
    TrigFlow flow: x_sigma cos t is the TrigFlow point at t = arctan(sigma / sigma_d)."""
    a, b = (torch.atan(torch.as_tensor(s, dtype=F64) / SIGMA_DATA) for s in (sigma_from, sigma_to))
    a, b = a.expand(len(x)), b.expand(len(x))
    return I.flow(m, TRIG, x * a.cos()[:, None], a, b) / b.cos()[:, None]


# ---------------------------------------------------------------------------------------
# The closed forms


def test_trigflow_denoiser_is_the_edm_denoiser_at_sigma_d_tan_t(mix):
    g = torch.Generator().manual_seed(0)
    t = 0.01 + 1.5 * torch.rand(300, generator=g, dtype=F64)
    x_t = TRIG.noisy(mix.sample(300, g, dtype=F64), 0.5 * torch.randn(300, 2, dtype=F64), t)
    edm = mix.denoise(x_t / t.cos()[:, None], SIGMA_DATA * t.tan())
    assert torch.allclose(I.denoise(mix, TRIG, x_t, t), edm, atol=1e-12)


@pytest.mark.parametrize("path", [TRIG, LIN], ids=["trigflow", "linear"])
def test_velocity_is_the_pf_ode_of_the_closed_form_log_density(mix, path):
    """v = (alpha'/alpha) x - (sigma' - alpha' sigma / alpha) sigma c^2 grad log p_t(x)."""
    g = torch.Generator().manual_seed(1)
    t = 0.05 + 0.9 * torch.rand(200, generator=g, dtype=F64)
    x = (torch.randn(200, 2, generator=g, dtype=F64)).requires_grad_(True)
    (score,) = torch.autograd.grad(I.log_prob(mix, path, x, t).sum(), x)
    a, s, da, ds = path.coefficients(t[:, None])
    expected = da / a * x - (ds - da * s / a) * s * path.noise_std**2 * score
    assert torch.allclose(I.velocity(mix, path, x.detach(), t), expected, atol=1e-10)


def test_marginal_at_t0_is_the_data_and_at_the_end_the_noise(mix):
    x = torch.randn(50, 2, dtype=F64)
    assert torch.allclose(I.log_prob(mix, LIN, x, 0.0), mix.log_prob(x), atol=1e-12)
    noise = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(I.log_prob(mix, LIN, x, 1.0), noise, atol=1e-12)


def test_trigflow_flow_agrees_with_the_edm_reference_solver(mix):
    x_T = 2.0 * torch.randn(40, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    reference = reference_pf_ode(x_T, mix, [2.0, EPS])[-1]
    assert torch.allclose(edm_flow(mix, x_T, 2.0, EPS), reference, atol=1e-7)


@pytest.mark.parametrize("path", [TRIG, LIN], ids=["trigflow", "linear"])
def test_differentiable_rk4_flow_matches_the_reference_solver(mix, path):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(30, 2, generator=g, dtype=F64)
    t = 0.3 + 0.6 * torch.rand(30, generator=g, dtype=F64)
    assert torch.allclose(I.flow_rk4(mix, path, x, t, 0.0), I.flow(mix, path, x, t, 0.0),
                          atol=1e-7)  # fmt: skip


def test_exact_average_velocity_satisfies_the_meanflow_identity(mix):
    """u = v - (t - r) du/dt (Geng et al. 2025, Eq. (6)), du/dt by central differences along
    the exact trajectory."""
    g = torch.Generator().manual_seed(4)
    z, r, t, h = torch.randn(20, 2, generator=g, dtype=F64), 0.2, 0.7, 1e-4
    u = I.average_velocity(mix, LIN, z, r, t)
    z_plus, z_minus = I.flow(mix, LIN, z, t, t + h), I.flow(mix, LIN, z, t, t - h)
    du_dt = (I.average_velocity(mix, LIN, z_plus, r, t + h)
             - I.average_velocity(mix, LIN, z_minus, r, t - h)) / (2 * h)  # fmt: skip
    assert torch.allclose(u, I.velocity(mix, LIN, z, t) - (t - r) * du_dt, atol=1e-6)
    assert torch.allclose(I.average_velocity(mix, LIN, z, t, t), I.velocity(mix, LIN, z, t))


# ---------------------------------------------------------------------------------------
# ECT


def test_ect_r_starts_at_the_data_and_halves_delta_t_per_stage():
    t = torch.tensor([0.01, 0.5, 1.9, 80.0], dtype=F64)
    r = ect_r(t, 0)  # n(t) >= q = 2 for t <= ln 7: there the target is the data
    assert (r[:3] == 0).all() and torch.isclose(r[3], t[3] / 2, rtol=1e-6)
    t = torch.tensor([0.01, 0.5, 5.0, 80.0], dtype=F64)
    gaps = [(t - ect_r(t, a)) / t for a in (4, 5)]
    assert torch.allclose(gaps[1][2:], gaps[0][2:] / 2, rtol=1e-3)  # n(t) -> 1 for large t


def test_truncated_lognormal_stays_in_the_range_with_the_right_law():
    t = truncated_lognormal(20000, -1.1, 2.0, EPS, 80.0, torch.Generator().manual_seed(0))
    assert t.min() > EPS and t.max() <= 80.0
    cut = stats.truncnorm((math.log(EPS) + 1.1) / 2, (math.log(80) + 1.1) / 2, -1.1, 2.0)
    assert stats.kstest(t.log().numpy(), cut.cdf).pvalue > 0.01


def test_ect_loss_vanishes_at_the_exact_consistency_function(mix):
    """On pairs (x_t, x_r) of the same exact ODE trajectory the ECT loss of the exact f* is
    zero to solver precision; a perturbed f is penalised."""
    g = torch.Generator().manual_seed(5)
    loss = EasyConsistencyTraining(stage_steps=1)
    t = loss.sample_t(24, g).to(F64)
    r = loss.r_of(t, k=3)
    x_t = mix.sample(24, g, dtype=F64) + t[:, None] * torch.randn(24, 2, generator=g, dtype=F64)
    x_r = edm_flow(mix, x_t, t, r)  # the exact ODE point at r
    z = (x_t - x_r) / (t - r)[:, None]  # so that x + t z = x_t and x + r z = x_r
    x = x_t - t[:, None] * z

    def exact(y, s):
        return edm_flow(mix, y, s, EPS)

    def perturbed(y, s):
        return exact(y, s) + 0.05 * (s - EPS)[:, None]

    zero = loss(exact, exact, x, k=3, t=t, z=z)
    assert zero.per_sample.abs().max() < 1e-5
    assert loss(perturbed, perturbed, x, k=3, t=t, z=z).per_sample.min() > 0.01


# ---------------------------------------------------------------------------------------
# sCM


RK4_STEPS = 100  # the exact functions as torch nets: RK4 error ~ (1.5 / 100)^4


class Float64Net(torch.nn.Module):
    """A small MLP on (x, t...) in float64 throughout, for finite-difference checks (the
    toy MLP embeds time in float32)."""

    def __init__(self, dim: int, times: int):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(dim + times, 32), torch.nn.SiLU(), torch.nn.Linear(32, dim)
        ).double()

    def forward(self, x, c):
        return self.body(torch.cat([x, torch.sin(3 * c.reshape(len(x), -1))], dim=1))


class ExactTrigflowNet(torch.nn.Module):
    """F* with cos t x - sin t sigma_d F* = the exact f* (RK4 flow to t = 0), in torch."""

    def __init__(self, mixture, shift: float = 0.0):
        super().__init__()
        self.mixture, self.shift = mixture, shift

    def forward(self, x_in, t):
        x = SIGMA_DATA * x_in
        f = (
            I.flow_rk4(self.mixture, TRIG, x, t, 0.0, steps=RK4_STEPS)
            + self.shift * torch.sin(t)[:, None]
        )
        return (torch.cos(t)[:, None] * x - f) / (SIGMA_DATA * torch.sin(t)[:, None])


def test_jvp_tangent_equals_a_central_finite_difference():
    torch.manual_seed(0)
    model = TrigFlowModel(Float64Net(2, 1), data_shape=(2,))
    g = torch.Generator().manual_seed(6)
    x0, z = torch.randn(16, 2, generator=g, dtype=F64), 0.5 * torch.randn(16, 2, dtype=F64)
    t, h = 0.2 + 1.2 * torch.rand(16, generator=g, dtype=F64), 1e-5
    x_t, dx = TRIG.noisy(x0, z, t), TRIG.conditional_velocity(x0, z, t)
    _, df_dt = consistency_tangent(model, x_t, t, dx)
    fd = (model(x_t + h * dx, t + h) - model(x_t - h * dx, t - h)) / (2 * h)
    assert torch.allclose(df_dt, fd, atol=1e-6)


def test_scd_tangent_vanishes_at_the_exact_consistency_function(mix):
    """With the exact teacher velocity, df*/dt = 0 along the ODE: g = 0 and the loss is 0."""
    g = torch.Generator().manual_seed(7)
    x0, z = mix.sample(8, g, dtype=F64), 0.5 * torch.randn(8, 2, generator=g, dtype=F64)
    t = 0.2 + 1.2 * torch.rand(8, generator=g, dtype=F64)
    loss = ContinuousConsistencyLoss(teacher=mix, tangent_c=None, warmup_steps=0, adaptive=False)
    exact = TrigFlowModel(ExactTrigflowNet(mix), data_shape=(2,))
    _, _, g_exact = loss.tangent(exact, x0, z, t, k=0)
    assert g_exact.abs().max() < 1e-6
    assert loss(exact, exact, x0, t=t, z=z).per_sample.abs().max() < 1e-10
    off = TrigFlowModel(ExactTrigflowNet(mix, shift=0.1), data_shape=(2,))
    assert loss.tangent(off, x0, z, t, k=0)[2].flatten(1).norm(dim=1).min() > 1e-3


@pytest.mark.parametrize("prior", [True, False])
def test_scm_loss_at_theta_minus_is_the_squared_tangent_of_algorithm_1(prior):
    """At theta = theta^-, w = 0 and no normalisation, Eq. (8) is ||g||^2 / D with
    g = cos t df/dt (Algorithm 1: the prior weight 1 / (sigma_d tan t) times sigma_d sin t
    df/dt), or g = sigma_d sin t df/dt without the prior; no further weight on the square."""
    torch.manual_seed(0)
    model = TrigFlowModel(Float64Net(2, 1), data_shape=(2,))
    g = torch.Generator().manual_seed(11)
    x0, z = torch.randn(16, 2, generator=g, dtype=F64), 0.5 * torch.randn(16, 2, dtype=F64)
    t = 0.05 + 1.4 * torch.rand(16, generator=g, dtype=F64)
    loss = ContinuousConsistencyLoss(tangent_c=None, warmup_steps=0, adaptive=False,
                                     prior_weight=prior)  # fmt: skip
    x_t, dx = TRIG.noisy(x0, z, t), TRIG.conditional_velocity(x0, z, t)
    _, df_dt = consistency_tangent(model, x_t, t, dx)
    factor = torch.cos(t) if prior else SIGMA_DATA * torch.sin(t)
    expected = (factor[:, None] * df_dt).pow(2).mean(1)
    assert torch.allclose(loss(model, model, x0, t=t, z=z).per_sample, expected, rtol=1e-10)


def test_teacher_velocity_from_the_edm_denoiser_is_the_trigflow_velocity(mix):
    x = torch.randn(50, 2, dtype=F64)
    t = 0.05 + 1.4 * torch.rand(50, dtype=F64)
    assert torch.allclose(teacher_velocity(mix, x, t, SIGMA_DATA), I.velocity(mix, TRIG, x, t),
                          atol=1e-10)  # fmt: skip


# ---------------------------------------------------------------------------------------
# MeanFlow


class ExactAverageVelocityNet(torch.nn.Module):
    """u*(z, r, t) = (z - z_r) / (t - r) by the RK4 flow, as a net of (z, (t, t - r))."""

    def __init__(self, mixture, shift: float = 0.0):
        super().__init__()
        self.mixture, self.shift = mixture, shift

    def forward(self, z, c):
        t, gap = c[:, 0], c[:, 1]
        z_r = I.flow_rk4(self.mixture, LIN, z, t, t - gap, steps=RK4_STEPS)
        return (z - z_r) / gap[:, None] + self.shift * t[:, None]


def test_meanflow_loss_vanishes_at_the_exact_average_velocity(mix):
    """With the marginal velocity in the target (x, eps chosen so that eps - x = v(z_t, t)),
    u_tgt = u* by the MeanFlow identity: the loss of u* is zero, that of a perturbed u not."""
    g = torch.Generator().manual_seed(8)
    r, t = sample_time_pair(8, -0.4, 1.0, ratio=1.0, generator=g)
    r = torch.minimum(r, t - 0.05).clamp_min(0)
    z = LIN.noisy(mix.sample(8, g, dtype=F64), torch.randn(8, 2, generator=g, dtype=F64), t)
    v = I.velocity(mix, LIN, z, t)
    x, e = z - t[:, None] * v, z + (1 - t)[:, None] * v
    loss = MeanFlowLoss(p=0.0)  # the plain squared error
    exact = AverageVelocityModel(ExactAverageVelocityNet(mix), data_shape=(2,))
    assert loss(exact, exact, x, r=r, t=t, e=e).per_sample.max() < 1e-10
    off = AverageVelocityModel(ExactAverageVelocityNet(mix, shift=0.1), data_shape=(2,))
    assert loss(off, off, x, r=r, t=t, e=e).per_sample.min() > 1e-4


def test_meanflow_jvp_equals_a_central_finite_difference():
    torch.manual_seed(0)
    model = AverageVelocityModel(Float64Net(2, 2), data_shape=(2,))
    g = torch.Generator().manual_seed(9)
    z, v = torch.randn(16, 2, generator=g, dtype=F64), torch.randn(16, 2, generator=g, dtype=F64)
    t = 0.3 + 0.6 * torch.rand(16, generator=g, dtype=F64)
    r, h = 0.5 * t, 1e-5
    u, u_tgt = meanflow_target(model, z, r, t, v)
    du_dt = (model(z + h * v, r, t + h) - model(z - h * v, r, t - h)) / (2 * h)
    assert torch.allclose(u_tgt, v - (t - r)[:, None] * du_dt, atol=1e-6)
    assert u.requires_grad and not u_tgt.requires_grad


# ---------------------------------------------------------------------------------------
# One-step samplers with the exact functions


def test_one_step_trigflow_sampler_with_the_exact_f_reproduces_the_data():
    m = line_mixture()
    exact = TrigFlowModel(ExactTrigflowNet(m), data_shape=(1,))
    z = SIGMA_DATA * torch.randn(1500, 1, generator=torch.Generator().manual_seed(10), dtype=F64)
    x = trigflow_sample(exact, z, [trigflow_T()])
    assert stats.kstest(x[:, 0].numpy(), lambda s: line_cdf(m, s)).pvalue > 0.01


def test_one_step_meanflow_sampler_with_the_exact_u_reproduces_the_data():
    m = line_mixture()
    exact = AverageVelocityModel(ExactAverageVelocityNet(m), data_shape=(1,))
    z1 = torch.randn(1500, 1, generator=torch.Generator().manual_seed(11), dtype=F64)
    x = meanflow_sample(exact, z1, [1.0])  # z_0 = z_1 - u(z_1, 0, 1)
    assert stats.kstest(x[:, 0].numpy(), lambda s: line_cdf(m, s)).pvalue > 0.01
    wrong = AverageVelocityModel(ExactAverageVelocityNet(m, shift=0.2), data_shape=(1,))
    x = meanflow_sample(wrong, z1, [1.0])
    assert stats.kstest(x[:, 0].numpy(), lambda s: line_cdf(m, s)).pvalue < 1e-6


# ---------------------------------------------------------------------------------------
# Training through the one loop

SHORT = dict(data="8gaussians", batch_size=512, hidden=64, depth=2)
# MeanFlow's ImageNet (r, t) sampler: times concentrated around sigmoid(-0.4), r = t for 3 of 4
# pairs. A small network learns it within a few hundred steps, which the short tests below
# need; the toy default (the CIFAR-10 sampler, which also trains the one-step corner r = 0,
# t = 1) is better after thousands of steps and is judged by the family benchmark instead.
MF_EARLY = dict(P_mean=-0.4, P_std=1.0, ratio=0.25, weight_p=1.0)


def test_a_short_meanflow_training_lowers_its_squared_error():
    """With p = 0 the loss is the plain squared error (with p = 1 the weighted loss
    ||Delta||^2 / (||Delta||^2 + c) stays near 1 whatever the fit). It keeps the variance of
    the conditional velocity eps - x about v, so it falls to a floor, not to 0."""
    cfg = TrainConfig(method="meanflow", steps=300, **{**SHORT, **MF_EARLY, "weight_p": 0.0})
    state = Trainer(cfg, None, device="cpu").run(progress=False)
    first, last = np.mean(state.losses[:30]), np.mean(state.losses[-30:])
    assert last < 0.9 * first, (first, last)


@pytest.mark.parametrize("method,steps,factor", [("ect", 1, 0.85), ("scm", 1, 0.5),
                                                 ("meanflow", 2, 0.8)])  # fmt: skip
def test_a_short_training_improves_the_samples(method, steps, factor, mix):
    """The energy distance of samples to the data falls in 400 steps. (ECT's loss at its
    first stage, ||f(x_t, t) - x|| / t for t < ln 7, sits near its floor, the posterior
    spread of x over t, from the start; sCM's at theta = theta^- measures the tangent, not
    the fit: the samples are the measure that moves. MeanFlow's one-step samples are not
    yet stable this early on the toy (docs/defaults.md): its two-step samples are read.)"""
    from cmedu.sampling import sample

    early = MF_EARLY if method == "meanflow" else {}
    cfg = TrainConfig(method=method, steps=400, **SHORT, **early)
    if method == "scm":
        cfg.warmup_steps = 100
    trainer = Trainer(cfg, None, device="cpu")
    data = mix.sample(2000, torch.Generator().manual_seed(0))

    def distance():
        x = sample(trainer.model.eval(), (2000, 2), steps,
                   generator=torch.Generator().manual_seed(1))  # fmt: skip
        trainer.model.train()
        return energy_distance(x, data)

    before = distance()
    trainer.run(progress=False)
    after = distance()
    assert after < factor * before, (before, after)


@pytest.mark.parametrize("method", ["ect", "scm", "scd", "meanflow"])
def test_each_method_trains_resumes_and_samples_through_the_one_loop(method, tmp_path):
    from cmedu.sampling import sample

    cfg = TrainConfig(method=method, steps=4, checkpoint_every=2, **SHORT)
    for state in Trainer(cfg, tmp_path, device="cpu").steps(progress=False):
        if state.step == 2:  # stopped after the checkpoint of step 2
            break
    resumed = Trainer(cfg, tmp_path, device="cpu")
    assert resumed.step == 2
    resumed.run(progress=False)
    whole = Trainer(cfg, None, device="cpu")
    whole.run(progress=False)
    params = [[*resumed.model.parameters()], [*whole.model.parameters()]]
    for i, trainer in enumerate((resumed, whole)):  # sCM's w_phi: saved and restored too
        params[i] += [p for m in trainer.objective.modules() for p in m.parameters()]
    assert len(params[0]) == len(params[1])
    for a, b in zip(*params):
        assert torch.allclose(a, b, atol=1e-6)
    model = load_run(tmp_path)[0]
    for steps in (1, 2):
        x = sample(model, (64, 2), steps=steps, generator=torch.Generator().manual_seed(0))
        assert x.shape == (64, 2) and torch.isfinite(x).all()


# ---------------------------------------------------------------------------------------
# Images through the same loop, and the command line

TINY = dict(net="tiny", net_overrides=dict(model_channels=16), batch_size=4)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An image folder of two classes of four random 8x8 RGB images."""
    from image_folders import write_image_folder

    return str(write_image_folder(tmp_path_factory.mktemp("images")))


@pytest.fixture(scope="module")
def dsm_run(images, tmp_path_factory):
    out = tmp_path_factory.mktemp("dsm")
    Trainer(TrainConfig(data=images, method="dsm", steps=1, **TINY), out, device="cpu").run(False)
    return str(out)


@pytest.mark.parametrize("method", ["ect", "scm", "scd", "meanflow"])
def test_each_method_takes_steps_on_images_with_the_tiny_unet(method, images, dsm_run, tmp_path):
    from cmedu.sampling import sample

    extra = {"ect": dict(init_from=dsm_run), "scd": dict(teacher=dsm_run)}.get(method, {})
    cfg = TrainConfig(data=images, method=method, steps=2, **TINY, **extra)
    state = Trainer(cfg, tmp_path, device="cpu").run(progress=False)
    assert len(state.losses) == 2 and np.isfinite(state.losses).all()
    model, _, shape = load_run(tmp_path)
    for steps in (1, 2):
        x = sample(model, (2, *shape), steps=steps, clip=(-1, 1))
        assert x.shape == (2, 3, 8, 8) and torch.isfinite(x).all()


@pytest.mark.parametrize("method", ["ect", "cd"])
def test_ect_and_cd_start_from_the_dsm_network(method, images, dsm_run):
    from cmedu.training import load_model

    extra = {"cd": dict(teacher=dsm_run)}.get(method, {})
    cfg = TrainConfig(data=images, method=method, steps=1, init_from=dsm_run, **TINY, **extra)
    trainer = Trainer(cfg, None, device="cpu")
    dsm = load_model(dsm_run)
    for online, ema, teacher in zip(
        trainer.model.net.parameters(), trainer.ema.net.parameters(), dsm.net.parameters()
    ):
        assert torch.equal(online, teacher) and torch.equal(ema, teacher)
    with pytest.raises(ValueError, match="init-from"):
        TrainConfig(data=images, method="ict", init_from=dsm_run, **TINY).resolved()


@pytest.mark.parametrize("method", ["ect", "scm", "meanflow"])
def test_the_command_line_trains_and_samples_each_method(method, tmp_path):
    from cmedu.cli import main

    out = tmp_path / "run"
    main(["train", "--data", "8gaussians", "--method", method, "--steps", "3",
          "--batch-size", "64", "--out", str(out), "--no-progress"])  # fmt: skip
    for steps in ("1", "2"):
        npy = tmp_path / f"x{steps}.npy"
        main(["sample", "--checkpoint", str(out), "--n", "10", "--steps", steps,
              "--out", str(npy)])  # fmt: skip
        x = np.load(npy)
        assert x.shape == (10, 2) and np.isfinite(x).all()
