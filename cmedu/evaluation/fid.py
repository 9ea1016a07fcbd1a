"""Sample quality as the papers measure it: FID, Inception Score and LPIPS.

CM (Song et al. 2023, Table 1) and iCT report, for CIFAR-10, the FID [1] and the Inception
Score [2] of 50,000 samples, with the FID taken against the 50,000 training images. Both
use the Inception-v3 graph that TensorFlow released on 2015-12-05, which the original FID
and IS code load; a different Inception (e.g. torchvision's) gives different numbers.

* Features: ``torch_fidelity``'s ``inception-v3-compat`` extractor, a port of that graph
  (TF-style bilinear resize to 299, ``(x - 128) / 128``, TF's average pooling), with the
  weights file ``INCEPTION_FILE`` fetched from ``INCEPTION_URL`` by torch.hub's
  ``load_state_dict_from_url`` into ``torch.hub.get_dir()/checkpoints`` on first use.
* FID: ``cmedu.metrics.frechet_distance`` between Gaussians fitted to the 2048 pool3
  features of the samples and of the reference images (Heusel et al. 2017).
* IS: ``inception_score`` of the 1008 logits without the bias, over 10 splits, as the
  original code [2] computes it.
* LPIPS [3], the CD/CT distance of the paper (Sec. 6): ``lpips_diversity``, the mean
  distance between pairs of samples, and ``mean_lpips`` between edits and references.

torch-fidelity is chosen over pytorch-fid and clean-fid because it is the one with the
TF-faithful resize and layers of the original graph (pytorch-fid resizes with PyTorch's
bilinear, clean-fid uses a different resize on purpose), it is maintained (0.4.0, 2026),
and it needs nothing beyond torch, torchvision, numpy, scipy and Pillow.

Offline, or behind a proxy, the weights cannot be fetched: ``WeightsNotFoundError`` then
names the file, the folder it was looked for in and the URL it comes from. There is no
fallback to other weights: a number from another network is not an FID.

References
----------
.. [1] Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter. "GANs Trained by a Two Time-Scale
   Update Rule Converge to a Local Nash Equilibrium." NeurIPS 2017.
.. [2] Salimans, Goodfellow, Zaremba, Cheung, Radford, Chen. "Improved Techniques for
   Training GANs." NeurIPS 2016.
.. [3] Zhang, Isola, Efros, Shechtman, Wang. "The Unreasonable Effectiveness of Deep
   Features as a Perceptual Metric." CVPR 2018.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import (
    URL_INCEPTION_V3,
    FeatureExtractorInceptionV3,
)
from tqdm.auto import tqdm

from ..constants import CD_N, ECT_TWO_STEP_T, SIGMA_DATA, T
from ..data.images import CIFAR10_NAMES, default_data_root, load_images, to_model_range, to_uint8
from ..distances import LPIPSDistance
from ..meanflow import meanflow_times
from ..metrics import classifier_score, frechet_distance
from ..parameterization import trigflow_T
from ..pfode import karras_timesteps
from ..runtime.device import make_generator
from ..runtime.weights import WeightsNotFoundError, hub_file, weights_not_found
from ..sampling import default_times, sample
from ..training import load_trained, require_consistency_model
from ..training.checkpoint import atomic_write, has_checkpoint
from ..trigflow import trigflow_times
from .classifier import (
    CLASSIFIER,
    MEASURES,
    classifier_info,
    classifier_measures,
    classifier_outputs,
    load_classifier,
    reference_features,
)

INCEPTION_URL = URL_INCEPTION_V3  # torch-fidelity's release of the 2015-12-05 TF weights
INCEPTION_FILE = INCEPTION_URL.rsplit("/", 1)[-1]  # weights-inception-2015-12-05-6726825d.pth
EXTRACTOR = "inception-v3-compat"  # torch-fidelity's name; keys the reference statistics
FID_LAYER, IS_LAYER = "2048", "logits_unbiased"  # pool3 features [1]; logits without bias [2]
IS_SPLITS = 10  # the original IS code [2] averages over 10 splits
PAPER_N = 50_000  # samples per FID / IS in CM Table 1 and iCT
# CIFAR-10, unconditional: (method, NFE) -> (FID, IS). CM: Song et al. 2023, Table 1;
# iCT: Song & Dhariwal 2024 (FID only here; see reference sheet section 8). The later
# methods, FID only: ECT, the locuslab/ect README (400k iterations at batch 128, from an EDM
# teacher); sCT and sCD, Lu & Song 2024, Table 1 (reference sheet section 10); MeanFlow,
# Geng et al. 2025, unconditional CIFAR-10 at 1 NFE (U-Net, from scratch).
PAPER_CIFAR10 = {
    ("CD (LPIPS)", 1): (3.55, 9.48),
    ("CD (LPIPS)", 2): (2.93, 9.75),
    ("CT", 1): (8.70, 8.49),
    ("CT", 2): (5.83, 8.85),
    ("iCT", 1): (2.83, None),
    ("iCT", 2): (2.46, None),
    ("EDM", 35): (2.04, 9.84),
    ("ECT", 1): (3.60, None),
    ("ECT", 2): (2.11, None),
    ("sCT", 1): (2.85, None),
    ("sCT", 2): (2.06, None),
    ("sCD", 1): (3.66, None),
    ("sCD", 2): (2.52, None),
    ("MeanFlow", 1): (2.92, None),
}


# ----------------------------------------------------------------------------------------
# The networks


def inception_weights_file() -> Path:
    """Where torch.hub keeps the weights of the FID Inception (Heusel et al. 2017):
    ``<hub dir>/checkpoints/<INCEPTION_FILE>``."""
    return hub_file(INCEPTION_URL)


def load_inception(device="cpu") -> nn.Module:
    """The Inception-v3 of FID and IS (TF graph of 2015-12-05; Heusel et al. 2017,
    Salimans et al. 2016) through torch-fidelity.

    Called on uint8 images (B, 3, H, W), it returns the pool3 features (B, 2048) and the
    logits without bias (B, 1008), float32. The weights are downloaded and cached by
    torch.hub on first use.

    Raises
    ------
    WeightsNotFoundError
        When the file is not cached and the download fails.
    """
    file = inception_weights_file()
    try:
        net = FeatureExtractorInceptionV3(EXTRACTOR, [FID_LAYER, IS_LAYER])
    except Exception as err:
        if file.is_file():  # present but unreadable: not a download problem
            raise
        raise weights_not_found("FID and IS (Inception-v3)", INCEPTION_URL, err) from err
    return net.to(device)


def load_lpips(net: str = "vgg", device="cpu") -> nn.Module:
    """LPIPS (Zhang et al. 2018), ``cmedu.distances.LPIPSDistance``, with the ImageNet
    backbone ``net``: the distance d of CD and CT (Song et al. 2023, Sec. 6).

    Raises ``WeightsNotFoundError`` (file, folder, URL) when the backbone is not cached and
    cannot be downloaded.
    """
    return LPIPSDistance(net=net).to(device)


@torch.no_grad()
def _inception_outputs(extractor: nn.Module, images: Tensor) -> tuple[Tensor, Tensor]:
    """Pool3 features (B, 2048) and logits (B, 1008) of uint8 images (B, 3, H, W), on the CPU."""
    device = next(extractor.parameters()).device
    features, logits = extractor(images.to(device))
    return features.cpu(), logits.cpu()


# ----------------------------------------------------------------------------------------
# The statistics


class FeatureMoments:
    """Running mean and covariance of feature vectors, float64: the Gaussian fit (m, C) of
    FID, Heusel et al. 2017.

    Sums are taken around the first batch's mean (the shifted-data algorithm), so that
    ``sigma`` equals ``np.cov`` of all rows seen, without keeping them.
    """

    def __init__(self):
        self.n, self.shift, self.s1, self.s2 = 0, None, None, None

    def add(self, features: Tensor) -> None:
        """Add a batch of features, shape (B, d), to the sums behind m and C of
        Heusel et al. 2017."""
        f = features.detach().cpu().double()
        if self.shift is None:
            self.shift = f.mean(0)
            self.s1 = torch.zeros_like(self.shift)
            self.s2 = torch.zeros(len(self.shift), len(self.shift), dtype=torch.float64)
        g = f - self.shift
        self.n += len(f)
        self.s1 += g.sum(0)
        self.s2 += g.T @ g

    @property
    def mu(self) -> np.ndarray:
        """Mean m of Heusel et al. 2017, shape (d,)."""
        return (self.shift + self.s1 / self.n).numpy()

    @property
    def sigma(self) -> np.ndarray:
        """Covariance C of Heusel et al. 2017, unbiased (divisor n - 1), (d, d)."""
        return ((self.s2 - torch.outer(self.s1, self.s1) / self.n) / (self.n - 1)).numpy()


def inception_score(logits: Tensor, splits: int = IS_SPLITS) -> tuple[float, float]:
    """Inception Score IS = exp(E_x KL(p(y|x) || p(y))), Salimans et al. 2016, Sec. 4 [2].

    The samples are cut into ``splits`` consecutive parts (at most one per sample); within
    each part p(y) is the mean of p(y|x), as in the original code. Returns the mean and
    standard deviation over the parts. The formula is ``cmedu.metrics.classifier_score``.

    Parameters
    ----------
    logits : Tensor, shape (N, K)
        Classifier logits; p(y|x) = softmax(logits).

    Returns
    -------
    (mean, std) : floats; 1 <= IS <= K.
    """
    return classifier_score(logits, splits)


def extract(
    extractor: nn.Module,
    batches: Iterable[Tensor],
    total: int,
    desc: str = "images",
    progress: bool = True,
) -> tuple[FeatureMoments, Tensor]:
    """Run the Inception over uint8 batches: the moments of the pool3 features (FID,
    Heusel et al. 2017) and all logits (IS, Salimans et al. 2016), shape (total, 1008)."""
    moments, logits = FeatureMoments(), []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for images in batches:
            features, out = _inception_outputs(extractor, images)
            moments.add(features)
            logits.append(out)
            bar.update(len(images))
    return moments, torch.cat(logits)


def stats_cache_dir() -> Path:
    """Where the reference statistics (m_w, C_w of Heusel et al. 2017) are
    cached: ``default_data_root()/fid-stats``."""
    return default_data_root() / "fid-stats"


def _dataset_key(data: str) -> str:
    """'cifar10' for the official set; else the folder or zip name and a hash of its path."""
    if str(data).lower() in CIFAR10_NAMES:
        return "cifar10"
    path = Path(data).expanduser().resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{path.stem if path.is_file() else path.name}-{digest}"


def reference_statistics(
    extractor: nn.Module,
    data: str = "cifar10",
    root=None,
    n: int | None = None,
    cache_dir=None,
    batch_size: int = 250,
    progress: bool = True,
) -> dict:
    """Mean m_w and covariance C_w (Heusel et al. 2017) of the pool3 features of
    the training split of ``data``, the reference of CM Table 1.

    Computed on first use and cached as ``<cache_dir>/<dataset>-train[-n<n>]-<extractor>.npz``
    (default ``stats_cache_dir()``), so the 50,000 CIFAR-10 images are read once per machine.

    Parameters
    ----------
    extractor : the network from ``load_inception`` (its name keys the cache)
    data : "cifar10" (official, torchvision download into ``root``) or an image folder / .zip
    n : use the first n training images only (default: all, as the papers do)

    Returns
    -------
    dict with ``mu`` (2048,), ``sigma`` (2048, 2048), ``n`` and ``name`` (the dataset's
    display name, e.g. "CIFAR-10 (JPEG copy)").
    """
    name = getattr(extractor, "name", EXTRACTOR)
    part = f"-n{n}" if n else ""
    path = Path(cache_dir or stats_cache_dir()) / f"{_dataset_key(data)}-train{part}-{name}.npz"
    if path.is_file():
        with np.load(path) as f:
            return {"mu": f["mu"], "sigma": f["sigma"], "n": int(f["n"]), "name": str(f["name"])}
    images = load_images(data, root=root, train=True)
    x = images.images[:n] if n else images.images
    batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    moments, _ = extract(extractor, batches, len(x), f"reference {images.name}", progress)
    stats = {"mu": moments.mu, "sigma": moments.sigma, "n": moments.n, "name": images.name}
    atomic_write(path, lambda f: np.savez(f, **stats))
    return stats


# ----------------------------------------------------------------------------------------
# Samples and LPIPS


def consistency_samples(
    model, shape, n: int, ts, batch_size: int = 250, seed: int = 0, device="cpu"
) -> Iterator[Tensor]:
    """n samples of Algorithm 1 (Song et al. 2023) at times ``ts``, every f output clamped
    to [-1, 1], as uint8 batches (b, C, H, W). The seed fixes x_T, so step counts compare
    on the same noise."""
    gen = make_generator(seed, torch.device(device))
    for i in range(0, n, batch_size):
        b = min(batch_size, n - i)
        x = sample(model, (b, *shape), ts=ts, generator=gen, device=device, clip=(-1, 1))
        yield to_uint8(x)


@torch.no_grad()
def mean_lpips(x: Tensor, y: Tensor, lpips: nn.Module, batch_size: int = 32) -> float:
    """Mean over i of LPIPS(x_i, y_i) (Zhang et al. 2018), e.g. of edits against their
    references (Song et al. 2023, Sec. 6.3).

    x, y : Tensor, shape (B, C, H, W), uint8 or float in [-1, 1].
    """
    x, y = (to_model_range(a) if a.dtype == torch.uint8 else a for a in (x, y))
    device = next(lpips.parameters()).device
    d = [lpips(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)).cpu()
         for i in range(0, len(x), batch_size)]  # fmt: skip
    return torch.cat(d).mean().item()


def lpips_diversity(images: Tensor, lpips: nn.Module, batch_size: int = 32) -> float:
    """Sample diversity: the mean LPIPS (Zhang et al. 2018) between disjoint pairs
    (x_{2i}, x_{2i+1}) of independent samples, shape (B, C, H, W). Higher is more diverse;
    identical samples give 0."""
    m = len(images) // 2
    return mean_lpips(images[0 : 2 * m : 2], images[1 : 2 * m : 2], lpips, batch_size)


# ----------------------------------------------------------------------------------------
# Whole evaluations


def load_consistency_model(spec: str, device="cpu"):
    """A consistency model f_theta of Song et al. 2023, Eq. (5), to sample with Algorithm 1:
    (model, image shape (C, H, W), description, method) from a run directory (``load_run``)
    or a shipped checkpoint name or path (``cmedu.training.pretrained``)."""
    model, cfg, shape = load_trained(spec, device=device)
    kind = "run" if has_checkpoint(spec) else "shipped"
    desc = f"{kind} {spec} ({cfg.method}, net {cfg.net}, data {cfg.data})"
    require_consistency_model(model, spec, "evaluate")
    if len(shape) != 3:
        raise ValueError(f"{spec} models {shape[0]}-D points, not images: FID needs images")
    return model, tuple(shape), desc, cfg.method


# The two-step times of the papers' CIFAR-10 results (reference sheet, section 3), so that a
# report set beside Table 1 samples as the papers did: iCT's tau_1 = 0.821 (the value the ECT
# code uses for iCT and ECT; a secondary source), and CD's 0.5853, index 11 of the
# descending N = 18 grid in the CIFAR-10 CD code. CT and more steps have no published
# CIFAR-10 times: the Karras grid (``default_times``).
# ECT's code samples two steps at the same 0.821 (``--mid_t``).
PAPER_TWO_STEP_TAU = {"ict": 0.821, "cd": round(float(karras_timesteps(CD_N)[6]), 4)}
PAPER_TWO_STEP_TAU["ect"] = ECT_TWO_STEP_T


def comparison_times(method: str, steps: int) -> tuple[list[float], str]:
    """Time points of ``steps``-step sampling (Algorithm 1, Song et al. 2023) for a report
    beside the papers' numbers, and where they come from."""
    if method in ("scm", "scd"):  # TrigFlow time (Lu & Song 2024): 1.1 for two steps
        return trigflow_times(steps, trigflow_T(), SIGMA_DATA).tolist(), "sCM's TrigFlow times"
    if method == "meanflow":  # z_0 = z_1 - u(z_1, 0, 1); equal intervals (Geng et al. 2025)
        return meanflow_times(steps).tolist(), "MeanFlow: equal intervals of [0, 1]"
    if steps == 1:
        return [T], "one step: f(x_T, T)"
    if steps == 2 and method in PAPER_TWO_STEP_TAU:
        tau = PAPER_TWO_STEP_TAU[method]
        return [T, tau], f"two steps: tau_1 = {tau:g}, the papers' CIFAR-10 choice for {method}"
    return default_times(steps).tolist(), f"{steps} steps: the Karras grid (no published times)"


def evaluate_model(
    model,
    shape,
    times: list,
    n: int,
    reference: dict | None,
    extractor: nn.Module | None,
    lpips: nn.Module | None = None,
    lpips_pairs: int = 0,
    batch_size: int = 250,
    seed: int = 0,
    device="cpu",
    progress: bool = True,
    classifier: nn.Module | None = None,
    classifier_reference: Tensor | None = None,
) -> list[dict]:
    """FID (Heusel et al. 2017), IS (Salimans et al. 2016), LPIPS diversity and the
    cmedu-classifier measures (``cmedu.evaluation.classifier``) of ``n`` samples of
    Algorithm 1 (Song et al. 2023) for each time list in ``times``.

    Returns one dict per time list: steps (= NFE), times, n; fid, is_mean, is_std when
    ``extractor`` is given; lpips_diversity over ``lpips_pairs`` pairs when ``lpips`` is;
    ``classifier`` (fd, kid, kid_std, classifier_score) when ``classifier`` and its
    ``classifier_reference`` features are.
    """
    rows = []
    for ts in times:
        ts = torch.as_tensor(ts, dtype=torch.float64)
        keep = n if classifier is not None else 2 * lpips_pairs
        kept: list[Tensor] = []
        batches = consistency_samples(model, shape, n, ts, batch_size, seed, device)
        batches = _keep_first(batches, keep, kept)
        row = {"steps": len(ts), "times": [round(t, 4) for t in ts.tolist()], "n": n}
        row.update(_inception_measures(extractor, batches, n, reference, len(ts), progress))
        images = torch.cat(kept) if kept else None
        if lpips is not None and lpips_pairs:
            row["lpips_diversity"] = lpips_diversity(images[: 2 * lpips_pairs], lpips)
            row["lpips_pairs"] = min(lpips_pairs, len(images) // 2)
        if classifier is not None:
            feats, logits = classifier_outputs(classifier, images, batch_size)
            row["classifier"] = classifier_measures(feats, logits, classifier_reference)
        rows.append(row)
    return rows


def _inception_measures(extractor, batches, n: int, reference, steps: int, progress) -> dict:
    """fid, is_mean, is_std of the sample batches; without an Inception, only draws them."""
    desc = f"{steps}-step samples"
    if extractor is None:
        with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
            for x in batches:
                bar.update(len(x))
        return {}
    moments, logits = extract(extractor, batches, n, desc, progress)
    is_mean, is_std = inception_score(logits)
    fid = frechet_distance(moments.mu, moments.sigma, reference["mu"], reference["sigma"])
    return {"fid": fid, "is_mean": is_mean, "is_std": is_std}


def _keep_first(batches: Iterable[Tensor], k: int, kept: list) -> Iterator[Tensor]:
    """Pass batches through, appending the first k images to ``kept``."""
    for x in batches:
        have = sum(len(a) for a in kept)
        if have < k:
            kept.append(x[: k - have])
        yield x


def _optional(load, *args):
    """(network, None) from ``load(*args)``, or (None, the message) when its weights are
    missing: FID, IS and LPIPS are reported where their weights exist."""
    try:
        return load(*args), None
    except WeightsNotFoundError as err:
        return None, str(err)


def evaluate(
    checkpoint: str,
    steps=(1, 2),
    times: list | None = None,
    n: int = PAPER_N,
    data: str = "cifar10",
    root=None,
    n_ref: int | None = None,
    lpips_pairs: int = 500,
    batch_size: int = 250,
    seed: int = 0,
    device="cpu",
    cache_dir=None,
    progress: bool = True,
    classifier: str = CLASSIFIER,
) -> dict:
    """FID and IS against the number of sampling steps, as in Table 1 of Song et al. 2023,
    with LPIPS diversity and, always, the cmedu-classifier measures: the whole evaluation
    of a checkpoint, as ``python -m cmedu evaluate`` runs it.

    The networks are loaded first, so a missing classifier fails before any sampling;
    missing Inception or LPIPS weights leave their columns out, and the report says why.
    ``times`` (a list of time lists) overrides ``steps``, whose time points default to the
    papers' (``comparison_times``); the report's note says which were used.
    Returns a JSON-ready report: checkpoint, reference, n, rows (``evaluate_model``), note.
    """
    start = time.perf_counter()
    extractor, fid_missing = _optional(load_inception, device)
    lpips, lpips_missing = _optional(load_lpips, "vgg", device) if lpips_pairs else (None, None)
    net, info = load_classifier(classifier, device, with_info=True)
    model, shape, desc, method = load_consistency_model(checkpoint, device)
    reference = None
    if extractor is not None:
        reference = reference_statistics(extractor, data, root, n_ref, cache_dir, batch_size,
                                         progress)  # fmt: skip
    ref_feats, ref_name, ref_split = reference_features(net, data, root, n_ref)
    chosen = [comparison_times(method, k) for k in steps] if times is None else []
    times = times if times is not None else [ts for ts, _ in chosen]
    sources = "; ".join(why for _, why in chosen) or "times given by the caller"
    rows = evaluate_model(model, shape, times, n, reference, extractor, lpips,
                          min(lpips_pairs, n // 2), batch_size, seed, device, progress,
                          net, ref_feats)  # fmt: skip
    report = {
        "checkpoint": checkpoint, "model": desc, "n": n, "seed": seed,
        "device": str(device), "seconds": round(time.perf_counter() - start, 1),
        "rows": rows, "note": f"{sample_size_note(n)} Times: {sources}.",
        "classifier": classifier_info(classifier, info, ref_name, ref_split, len(ref_feats)),
    }  # fmt: skip
    if reference is not None:
        report["reference"] = {"data": reference["name"], "split": "train", "n": reference["n"]}
        report["extractor"] = f"{EXTRACTOR} ({INCEPTION_FILE}, torch-fidelity)"
    missing = {"fid_missing": fid_missing, "lpips_missing": lpips_missing}
    return report | {k: v for k, v in missing.items() if v}


def sample_size_note(n: int) -> str:
    """How n compares with the 50,000 samples of Table 1 (Song et al. 2023)."""
    if n >= PAPER_N:
        return f"n = {n} samples per row, as in the papers ({PAPER_N})."
    return (
        f"n = {n} samples per row, fewer than the papers' {PAPER_N}: FID is biased upward "
        "at small n (its estimate falls roughly like 1/n), so compare only at equal n."
    )


def report_markdown(report: dict) -> str:
    """The report as a markdown table laid out like Table 1 (Song et al. 2023), with the
    cmedu-classifier measures beside FID and IS, and its provenance lines."""
    fid = "reference" in report
    lpips = any("lpips_diversity" in r for r in report["rows"])
    head = "| steps (NFE) | times | n |" + (" FID | IS |" if fid else "")
    head += (" LPIPS diversity |" if lpips else "") + "".join(f" {MEASURES[k]} |" for k in MEASURES)
    lines = [f"**{report['model']}**", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in report["rows"]:
        times = ", ".join(f"{t:g}" for t in r["times"])
        line = f"| {r['steps']} | {times} | {r['n']} |"
        if fid:
            line += f" {r['fid']:.2f} | {r['is_mean']:.2f} ± {r['is_std']:.2f} |"
        if lpips:
            line += f" {r.get('lpips_diversity', float('nan')):.3f} |"
        c = r["classifier"]
        line += f" {c['fd']:.2f} | {c['kid']:.4f} ± {c['kid_std']:.4f} |"
        line += f" {c['classifier_score']:.2f} |"
        lines.append(line)
    return "\n".join([*lines, "", *_provenance(report), report["note"]])


def _provenance(report: dict) -> list[str]:
    """The report's lines on references, feature networks and missing weights."""
    c = report["classifier"]
    lines = [f"{', '.join(MEASURES.values())}: {c['name']} ({c['weights']}, test accuracy "
             f"{c['test_accuracy']}), against {c['reference']['data']} "
             f"({c['reference']['split']}, {c['reference']['n']} images). {c['note']}"]  # fmt: skip
    if "reference" in report:
        ref = report["reference"]
        lines.append(f"FID and IS: {report['extractor']}, against {ref['data']} "
                     f"({ref['split']}, {ref['n']} images).")  # fmt: skip
    if "fid_missing" in report:
        lines.append(f"FID and IS not measured: {report['fid_missing']}")
    if "lpips_missing" in report:
        lines.append(f"LPIPS diversity not measured: {report['lpips_missing']}")
    return lines


def check_report_path(path) -> Path:
    """The report's path, if it names a ``.json`` or ``.md`` file; else a ValueError."""
    path = Path(path)
    if path.suffix not in (".json", ".md"):
        raise ValueError(f"--out {path}: write a .json or .md report")
    return path


def write_report(report: dict, path) -> Path:
    """Write the report (FID and IS as in Table 1 of Song et al. 2023) as JSON (``.json``)
    or markdown (``.md``)."""
    path = check_report_path(path)
    text = json.dumps(report, indent=2) if path.suffix == ".json" else report_markdown(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return path
