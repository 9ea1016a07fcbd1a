"""The training loop (Algorithms 2 and 3, DSM): short runs learn, the target EMA follows
Eq. (8), checkpoints resume bit for bit, a changed config or a diverged loss is refused
cleanly, and CD gets its teacher from a mixture or a DSM run."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from cmedu import (
    ConsistencyModel,
    EDMDenoiser,
    ToyMLP,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    ct_mu,
    ema_update,
    energy_distance,
    load_model,
    sample,
    toy_data,
)
from cmedu.ema import ema_rate_for_run
from cmedu.losses import DenoisingScoreMatching
from cmedu.training.checkpoint import CHECKPOINT, CONFIG

SMALL = dict(data="8gaussians", batch_size=64, hidden=32, depth=2)


def _one_step_energy_distance(model, data, n=2000) -> float:
    """Energy distance between 1-step samples f(x_T, T) and fresh data (fixed seeds)."""
    x = sample(model, (n, 2), generator=torch.Generator().manual_seed(123))
    return energy_distance(x, data.sample(n, torch.Generator().manual_seed(7)))


def _learns(cfg: TrainConfig) -> tuple[float, float]:
    trainer = Trainer(cfg, None, device="cpu")
    untrained = copy.deepcopy(trainer.ema)
    trainer.run(progress=False)
    data = toy_data(cfg.data)
    return _one_step_energy_distance(untrained, data), _one_step_energy_distance(trainer.ema, data)


# ---------------------------------------------------------------- learning


@pytest.mark.slow
def test_cd_with_exact_score_learns_one_step_generation():
    """CD (Alg. 2, Heun, exact mixture score, target mu = 0): 800 steps take the EMA model's
    1-step energy distance from 0.72 to ~0.03 (measured); asserted: below a tenth of the
    untrained one.
    The loss itself is no guide: an untrained net is trivially self-consistent."""
    before, after = _learns(TrainConfig(method="cd", steps=800, batch_size=256, mu=0.0))
    assert after < 0.1 * before, (before, after)


@pytest.mark.slow
def test_ict_learns_one_step_generation():
    """iCT, 2000 steps at lr 2e-3: energy distance 0.72 -> ~0.09 (measured 0.09-0.12 over
    settings); asserted: below a quarter of the untrained one."""
    before, after = _learns(TrainConfig(method="ict", steps=2000, batch_size=256, lr=2e-3))
    assert after < 0.25 * before, (before, after)


@pytest.fixture(scope="module")
def dsm_run(tmp_path_factory):
    """A short DSM (EDM denoiser) run on 8gaussians, kept on disk as a CD teacher."""
    out = tmp_path_factory.mktemp("dsm")
    cfg = TrainConfig(data="8gaussians", method="dsm", steps=600, batch_size=256, lr=3e-3)
    trainer = Trainer(cfg, out, device="cpu")
    untrained = copy.deepcopy(trainer.model).eval()
    trainer.run(progress=False)
    return out, untrained, trainer


def test_dsm_loss_falls_toward_the_exact_denoiser(dsm_run):
    """On a fixed held-out batch (same x, sigma, noise for every model) the DSM loss of the
    trained EMA closes at least 40% of the gap between the untrained net and the optimum,
    the exact posterior mean (measured: 1.41 -> 1.21, optimum 1.07: 58%)."""
    _, untrained, trainer = dsm_run
    gm = toy_data("8gaussians")
    g = torch.Generator().manual_seed(5)
    x = gm.sample(4096, g)
    dsm = DenoisingScoreMatching()
    sigma = dsm.sample_sigma(4096, g)
    z = torch.randn(x.shape, generator=g)

    def loss(model):
        with torch.no_grad():
            return dsm(model, None, x, sigma=sigma, z=z).loss.item()

    before, after, best = loss(untrained), loss(trainer.ema), loss(gm.denoise)
    assert best < after < before - 0.4 * (before - best), (before, after, best)


def test_cd_with_teacher_from_a_dsm_run(dsm_run, tmp_path):
    teacher_dir, _, _ = dsm_run
    cfg = TrainConfig(
        method="cd", steps=5, teacher=str(teacher_dir), **dict(SMALL, data="two_moons")
    )
    trainer = Trainer(cfg, tmp_path / "cd", device="cpu")
    assert isinstance(trainer.objective.teacher, EDMDenoiser)
    assert not trainer.objective.teacher.training
    state = trainer.run(progress=False)
    assert state.step == 5 and all(torch.isfinite(torch.tensor(state.losses)))
    # A CD run is not a teacher.
    with pytest.raises(ValueError, match="is not a DSM"):
        Trainer(dataclasses.replace(cfg, teacher=str(tmp_path / "cd")), None, device="cpu")


def test_cd_on_a_sample_only_toy_needs_a_teacher():
    with pytest.raises(ValueError, match="--teacher"):
        Trainer(TrainConfig(method="cd", **dict(SMALL, data="two_moons")), None, device="cpu")


def test_cd_on_a_mixture_uses_its_exact_denoiser():
    trainer = Trainer(TrainConfig(method="cd", **SMALL), None, device="cpu")
    x = torch.randn(5, 2, dtype=torch.float64)
    torch.testing.assert_close(
        trainer.objective.teacher(x, 0.3), toy_data("8gaussians").denoise(x, 0.3)
    )


# ---------------------------------------------------------------- Eq. (8) and the EMA


def test_ema_update_is_eq_8():
    torch.manual_seed(0)
    a, b = ConsistencyModel(torch.nn.Linear(2, 2)), ConsistencyModel(torch.nn.Linear(2, 2))
    old = [p.clone() for p in a.parameters()]
    ema_update(a, b, 0.9)
    for p, p_old, q in zip(a.parameters(), old, b.parameters()):
        torch.testing.assert_close(p, 0.9 * p_old + 0.1 * q)
    ema_update(a, b, 0.0)  # mu = 0: theta^- = theta
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_ema_update_copies_buffers():
    torch.manual_seed(0)
    a, b = ToyMLP(2, 8, 1), ToyMLP(2, 8, 1)
    assert not torch.equal(a.embed.freqs, b.embed.freqs)
    ema_update(a, b, 0.99)
    assert torch.equal(a.embed.freqs, b.embed.freqs)


def test_ema_rate_for_run():
    assert ema_rate_for_run(1000) == pytest.approx(0.99)  # window of 100 steps
    assert ema_rate_for_run(10**8) == 0.9999  # capped at the paper's rate
    assert ema_rate_for_run(5) == 0.0


def test_ct_target_follows_mu_k_after_each_step():
    """Algorithm 3: theta^- <- mu(k) theta^- + (1 - mu(k)) theta after the optimiser step."""
    trainer = Trainer(TrainConfig(method="ct", steps=50, mu0=0.9, **SMALL), None, device="cpu")
    for k in range(3):
        before = [p.clone() for p in trainer.target.parameters()]
        trainer.train_step()
        mu = ct_mu(k, 50, 2, 150, 0.9, "paper")
        for p, p_old, q in zip(trainer.target.parameters(), before, trainer.model.parameters()):
            torch.testing.assert_close(p, mu * p_old + (1 - mu) * q)
    assert ct_mu(0, 50, 2, 150, 0.9, "paper") == pytest.approx(0.9)


def test_ict_keeps_no_target_network_and_trains_against_stopgrad_of_itself(tmp_path):
    """iCT: theta^- = stopgrad(theta), so no separate target network exists, none is saved,
    and CD with mu = 0 is the same; CD with mu > 0 keeps one (Eq. (8))."""
    trainer = Trainer(TrainConfig(method="ict", steps=10, **SMALL), tmp_path, device="cpu")
    assert trainer.target is None and not trainer.objective.uses_target
    trainer.run(progress=False)
    assert "target" not in torch.load(tmp_path / CHECKPOINT, weights_only=True)
    cd0 = Trainer(TrainConfig(method="cd", steps=1, mu=0.0, **SMALL), None, device="cpu")
    cd95 = Trainer(TrainConfig(method="cd", steps=1, mu=0.95, **SMALL), None, device="cpu")
    assert cd0.target is None and cd95.target is not None
    ct0 = Trainer(TrainConfig(method="ct", steps=1, mu0=0.0, **SMALL), None, device="cpu")
    ct9 = Trainer(TrainConfig(method="ct", steps=1, mu0=0.9, **SMALL), None, device="cpu")
    assert ct0.target is None and ct9.target is not None  # CT with mu0 = 0: mu(k) = 0


@pytest.mark.parametrize("method", ["ict", "ct", "cd"])
def test_each_step_descends_the_loss_against_its_methods_target(method):
    """The loss of step k is recomputed by hand from the same random draws: iCT against
    stopgrad of the online network theta (Song & Dhariwal 2024), CT and CD against the
    target EMA theta^- of Eq. (8). After a few steps these differ from each other and from
    the initial network (theta^- lags theta, and both left their initialisation), so a loop
    that passed the wrong network (for iCT: a frozen copy of the initial one) fails."""
    extra = {"cd": {"mu": 0.95}, "ct": {"mu0": 0.9}}.get(method, {})  # both with an EMA target
    cfg = TrainConfig(method=method, steps=20, lr=1e-2, **SMALL, **extra)
    trainer = Trainer(cfg, None, device="cpu")
    initial = copy.deepcopy(trainer.model)
    for _ in range(5):
        trainer.train_step()
    online = copy.deepcopy(trainer.model)
    target = copy.deepcopy(trainer.target) if trainer.target is not None else None
    expected_target = target if method in ("ct", "cd") else online
    wrong_target = initial if method == "ict" else online

    def loss_against(net):  # the step's own draws: the batch, then the loss's n and z
        g = torch.Generator().set_state(trainer.generator.get_state())
        x = trainer.data.sample(trainer.batch, g)
        return trainer.objective(online, net, x, trainer.step, g).loss.item()

    expected, wrong = loss_against(expected_target), loss_against(wrong_target)
    loss, _ = trainer.train_step()
    assert loss == pytest.approx(expected, rel=1e-9)  # the same arithmetic: equal bit for bit
    assert abs(wrong - expected) > 1e-5 * abs(expected)  # measured 4e-4 to 7e-3 relative


# ---------------------------------------------------------------- configuration


def test_resolved_config_takes_per_method_defaults():
    ict = TrainConfig(method="ict").resolved()
    assert (ict.distance, ict.s0, ict.s1, ict.steps) == ("pseudo_huber", 10, 80, 16_000)
    assert ict.ema_rate == pytest.approx(ema_rate_for_run(16_000))
    cd = TrainConfig(method="cd", steps=100, distance="l1").resolved()
    assert (cd.distance, cd.steps, cd.N) == ("l1", 100, 18)
    methods = "dsm, cd, ct, ict, ect, scm, scd, meanflow"
    with pytest.raises(ValueError, match=f"method: expected one of {methods}, got 'gan'"):
        TrainConfig(method="gan").resolved()


def test_sct_learns_its_weight_on_images_and_not_on_the_toys_unless_told():
    """sCT's learned weight w_phi(t) (Lu & Song 2024, Eq. (8)): the paper's on images; w = 0
    on the toys (benchmarks/results/scm-toy-settings-2026-12-02.md); a flag overrides."""
    toy = Trainer(TrainConfig(method="scm", steps=1, **SMALL), None, device="cpu")
    assert toy.config.adaptive_weight is False and toy.objective.weight_net is None
    told = TrainConfig(method="scm", adaptive_weight=True, **SMALL).resolved()
    assert told.adaptive_weight is True
    assert TrainConfig(data="cifar10", method="scm").resolved().adaptive_weight is True
    assert TrainConfig(method="scd").resolved().adaptive_weight is True


def test_yields_a_state_after_every_step():
    trainer = Trainer(TrainConfig(method="ict", steps=4, **SMALL), None, device="cpu")
    states = list(trainer.steps(progress=False))
    assert [s.step for s in states] == [1, 2, 3, 4]
    assert len(states[-1].losses) == 4
    # iCT curriculum stretched over K = 4 steps: K' = floor(4 / (log2(8) + 1)) = 1
    assert [s.N for s in states] == [11, 21, 41, 81]
    assert trainer.run(progress=False) is None  # nothing left to do


# ---------------------------------------------------------------- checkpoints


def _state_dicts(trainer):
    parts = {"model": trainer.model, "ema": trainer.ema, "target": trainer.target}
    return {name: module.state_dict() for name, module in parts.items() if module is not None}


@pytest.mark.parametrize(
    "method, extra",
    [("ct", {}), ("ict", {"lr_schedule": "cosine"}), ("cd", {"mu": 0.5})],
)
def test_resume_is_bitwise_identical_to_an_uninterrupted_run(tmp_path, method, extra):
    cfg = TrainConfig(method=method, steps=40, checkpoint_every=20, dropout=0.2, **SMALL, **extra)
    straight = Trainer(cfg, tmp_path / "straight", device="cpu")
    straight.run(progress=False)

    first = Trainer(cfg, tmp_path / "split", device="cpu")
    for state in first.steps(progress=False):
        if state.step == 20:
            break  # as if the process stopped here; the checkpoint of step 20 is on disk
    del first
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    second = Trainer(cfg, tmp_path / "split", device="cpu")
    assert second.step == 20
    second.run(progress=False)

    for name, sd in _state_dicts(straight).items():
        other = _state_dicts(second)[name]
        assert all(torch.equal(v, other[k]) for k, v in sd.items()), name
    assert second.losses == straight.losses
    opt_a, opt_b = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])


def test_cosine_schedule_decays_the_learning_rate_to_zero_over_the_run():
    """lr_k = lr (1 + cos(pi k / K)) / 2: lr at the first step, lr / 2 half way, about 0 at
    the last; the constant schedule keeps lr."""
    lrs = {}
    for schedule in ("cosine", "constant"):
        cfg = TrainConfig(method="ict", steps=8, lr=2e-3, lr_schedule=schedule, **SMALL)
        trainer = Trainer(cfg, None, device="cpu")
        lrs[schedule] = []
        for _ in trainer.steps(progress=False):
            lrs[schedule].append(trainer.optimizer.param_groups[0]["lr"])
    expected = [1e-3 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
    assert lrs["cosine"] == pytest.approx(expected, rel=1e-12)
    assert lrs["cosine"][4] == pytest.approx(1e-3) and lrs["cosine"][-1] < 0.04 * 2e-3
    assert lrs["constant"] == [2e-3] * 8


def test_a_different_config_on_an_existing_run_is_refused(tmp_path):
    cfg = TrainConfig(method="ict", steps=4, checkpoint_every=2, **SMALL)
    Trainer(cfg, tmp_path, device="cpu").run(progress=False)
    with pytest.raises(ValueError, match="lr: 0.001 -> 0.002"):
        Trainer(dataclasses.replace(cfg, lr=2e-3), tmp_path, device="cpu")
    with pytest.raises(ValueError, match="hidden: 32 -> 64"):
        Trainer(dataclasses.replace(cfg, hidden=64), tmp_path, device="cpu")
    resumed = Trainer(dataclasses.replace(cfg, checkpoint_every=1), tmp_path, device="cpu")
    assert resumed.step == 4  # checkpoint_every may change


def test_diverged_loss_raises_and_leaves_the_checkpoint_untouched(tmp_path, monkeypatch):
    cfg = TrainConfig(method="ict", steps=10, checkpoint_every=2, **SMALL)
    trainer = Trainer(cfg, tmp_path, device="cpu")
    loop = trainer.steps(progress=False)
    for _ in range(4):
        next(loop)
    saved = (tmp_path / CHECKPOINT).read_bytes(), (tmp_path / CONFIG).read_bytes()

    def nan_distance(x, y):
        return torch.full((x.shape[0],), float("nan"))

    monkeypatch.setattr(trainer.objective, "distance", nan_distance)
    with pytest.raises(TrainingDiverged, match="loss became nan at step 5"):
        next(loop)
    assert ((tmp_path / CHECKPOINT).read_bytes(), (tmp_path / CONFIG).read_bytes()) == saved
    assert Trainer(cfg, tmp_path, device="cpu").step == 4


def test_load_model_gives_the_ema_or_online_network_in_eval_mode(tmp_path):
    cfg = TrainConfig(method="ict", steps=6, checkpoint_every=3, **SMALL)
    trainer = Trainer(cfg, tmp_path, device="cpu")
    trainer.run(progress=False)
    ema, online = load_model(tmp_path), load_model(tmp_path, which="online")
    assert isinstance(ema, ConsistencyModel) and not ema.training and not online.training
    for loaded, live in [(ema, trainer.ema), (online, trainer.model)]:
        assert all(torch.equal(v, live.state_dict()[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "nowhere")


def test_the_edm_teachers_evaluation_ema_has_a_half_life_of_half_a_million_images():
    """EDM gives its EMA as a half-life in images: the per-step rate depends on the batch,
    and after 0.5M images an old weight counts half."""
    for batch in (128, 512):
        cfg = TrainConfig(data="synthetic-shapes", method="dsm", steps=10**7, batch_size=batch)
        rate = cfg.resolved().ema_rate
        assert rate ** (500_000 / batch) == pytest.approx(0.5)
