"""An offline yardstick: sample quality measured in a shipped CIFAR-10 classifier's features.

FID (Heusel et al. 2017) and the Inception Score (Salimans et al. 2016) need the
Inception-v3 weights, which cannot be fetched offline. cmedu ships a small CIFAR-10
classifier (``checkpoints/cifar10-classifier/``, see its MODEL_CARD.md;
``networks.classifier.CifarClassifier``) and measures samples in its penultimate features:

* **FD in cmedu-classifier features**: the Fréchet distance of FID between Gaussians
  fitted to the features of samples and of real images (``cmedu.metrics.frechet_distance``).
* **KID in cmedu-classifier features**: the unbiased kernel distance of Bińkowski et al.
  2018, MMD² with the cubic kernel k(x, y) = (x·y / d + 1)^3, averaged over subsets.
* **classifier score**: the Inception Score's formula, exp E_x KL(p(y|x) || p(y)), with
  the classifier's 10 CIFAR-10 classes: 1 for samples of one class or of no class, 10 at
  most.

These are not FID, KID or IS: the network is a 1M-parameter classifier of 32x32 CIFAR-10
images, not Inception-v3, so the numbers are comparable only with each other (same
classifier, same n), never with the papers'. Their noise and a ladder of models are in
``benchmarks/yardstick.py`` and ``docs/checkpoints.md``.

References (FID and IS: as in ``cmedu.evaluation.fid``): Bińkowski, Sutherland, Arbel,
Gretton. "Demystifying MMD GANs." ICLR 2018.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..data.images import has_test_split, load_images, to_model_range
from ..metrics import classifier_score, frechet_distance, kernel_distance
from ..networks.classifier import CifarClassifier
from ..training.checkpoint import atomic_write
from ..training.pretrained import CHECKPOINTS, CIFAR10_CLASSIFIER

CLASSIFIER = CIFAR10_CLASSIFIER  # the shipped classifier's folder under checkpoints/
CLASSIFIER_FILE = "classifier.pt"  # not model.pt: it is no generative model of load_pretrained
CLASSIFIER_NAME = "cmedu-classifier"  # how reports name the feature space
MEASURES = {  # key -> what it is; never FID, KID or IS (another network)
    "fd": f"FD in {CLASSIFIER_NAME} features",
    "kid": f"KID in {CLASSIFIER_NAME} features",
    "classifier_score": "classifier score",
}
NOT_FID = (
    f"{CLASSIFIER_NAME}: a CIFAR-10 classifier shipped with cmedu, not Inception-v3; "
    "these numbers are not FID, KID or IS and compare only with each other at equal n."
)


def classifier_path(name_or_path: str | Path = CLASSIFIER) -> Path:
    """The weights file of a classifier: a file, a folder holding ``CLASSIFIER_FILE``, or a
    name under ``checkpoints/``; a clear FileNotFoundError if there is none."""
    path = Path(name_or_path)
    candidates = (path, path / CLASSIFIER_FILE, CHECKPOINTS / str(name_or_path) / CLASSIFIER_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no classifier {str(name_or_path)!r}: looked for "
        f"{', '.join(str(c) for c in candidates)}. The shipped one is "
        f"checkpoints/{CLASSIFIER}/{CLASSIFIER_FILE}; train it with "
        "`python scripts/train_classifier.py` (its MODEL_CARD.md gives the command)."
    )


def export_classifier(net: CifarClassifier, out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write ``net``'s weights in float16, its config and ``meta`` (JSON-like: recipe,
    accuracy, wall time, ...) to ``out_dir/classifier.pt``, atomically."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    meta = json.loads(json.dumps(meta or {}, default=str))  # plain types: weights_only loads
    buffer = io.BytesIO()
    torch.save({"config": net.config, "state": half, "meta": meta}, buffer)
    path = Path(out_dir) / CLASSIFIER_FILE
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def load_classifier(name_or_path: str | Path = CLASSIFIER, device="cpu", with_info=False):
    """The classifier ``name_or_path`` (default: the shipped one) in eval mode, float32, on
    ``device``; ``with_info=True`` also returns its ``meta`` dict (recipe, test accuracy)."""
    payload = torch.load(classifier_path(name_or_path), map_location="cpu", weights_only=True)
    net = CifarClassifier(**payload["config"])
    net.load_state_dict({k: v.float() if v.is_floating_point() else v
                         for k, v in payload["state"].items()})  # fmt: skip
    net = net.to(device).eval()
    return (net, payload["meta"]) if with_info else net


@torch.no_grad()
def classifier_outputs(
    net: CifarClassifier, images: Tensor, batch_size: int = 500
) -> tuple[Tensor, Tensor]:
    """(features, logits) of ``images`` (N, 3, H, W), uint8 or float in [-1, 1]: the
    penultimate features (N, d) and the logits (N, classes), float64 on the CPU."""
    device = next(net.parameters()).device
    feats, logits = [], []
    for batch in images.split(batch_size):
        x = to_model_range(batch) if batch.dtype == torch.uint8 else batch.float()
        h = net.features(x.to(device))
        feats.append(h.double().cpu())
        logits.append(net.head(h).double().cpu())
    return torch.cat(feats), torch.cat(logits)


def feature_fd(x: Tensor, y: Tensor) -> float:
    """The Fréchet distance of FID (Heusel et al. 2017) between Gaussians fitted (mean,
    unbiased covariance) to the feature rows of x (m, d) and of y (n, d)."""
    x, y = x.double().numpy(), y.double().numpy()
    cov = [np.atleast_2d(np.cov(a, rowvar=False)) for a in (x, y)]
    return frechet_distance(x.mean(0), cov[0], y.mean(0), cov[1])


def classifier_measures(
    features: Tensor,
    logits: Tensor,
    reference: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """The three measures (``MEASURES``) of samples with ``features`` (n, d) and ``logits``
    (n, classes) against ``reference`` features (m, d) of real images: fd, kid (mean over
    ``subsets`` of ``subset_size``, Bińkowski et al. 2018), kid_std and classifier_score
    (p(y) over all n samples: one split)."""
    generator = torch.Generator().manual_seed(seed)
    kid, kid_std = kernel_distance(features, reference, subsets, subset_size, generator)
    return {"fd": feature_fd(features, reference), "kid": kid, "kid_std": kid_std,
            "classifier_score": classifier_score(logits, splits=1)[0]}  # fmt: skip


def reference_features(
    net: CifarClassifier, data: str = "cifar10", root=None, n: int | None = None
) -> tuple[Tensor, str, str]:
    """(features, display name, split) of the real images the samples are measured against:
    the test split of ``data`` where it has one (images the shipped classifier never saw,
    so that real images score at the floor), else its training images; the first ``n``
    if given."""
    split = "test" if has_test_split(data) else "train"
    images = load_images(data, root=root, train=split == "train")
    x = images.images[:n] if n else images.images
    return classifier_outputs(net, x)[0], images.name, split


class Yardstick:
    """The offline yardstick at one sample size: measure images against fixed reference
    features, and the measures' noise as the spread of real against real at that size.

    ``reference`` are the classifier features (m, d) of real images; ``held_out`` real images
    (uint8 or [-1, 1]) that are not among them, from which ``noise`` draws disjoint sets of
    ``n``. A model's FD means something only beside that spread, at the same n.
    """

    def __init__(self, net: CifarClassifier, reference: Tensor, held_out: Tensor | None = None):
        self.net, self.reference, self.held_out = net, reference, held_out

    @classmethod
    def from_images(cls, net: CifarClassifier, images: Tensor, n_reference: int = 5000,
                    seed: int = 0) -> Yardstick:  # fmt: skip
        """Split real ``images`` at random into ``n_reference`` reference images and the
        held-out rest. At random: an image folder lists its images class by class, so its
        first half and second half hold different classes, and would be far apart."""
        if not 0 < n_reference < len(images):
            raise ValueError(f"n_reference = {n_reference}: need 0 < it < {len(images)} images")
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        reference = classifier_outputs(net, images[order[:n_reference]])[0]
        return cls(net, reference, images[order[n_reference:]])

    def measure(self, images: Tensor, seed: int = 0) -> dict[str, float]:
        """``classifier_measures`` of ``images`` (n, 3, H, W) against the reference."""
        feats, logits = classifier_outputs(self.net, images)
        return classifier_measures(feats, logits, self.reference, seed=seed)

    def noise(self, n: int, splits: int = 3) -> list[dict[str, float]]:
        """The measures of ``splits`` disjoint sets of n held-out real images (as many as
        there are, at least one): what 'as good as real data' reads at this n."""
        if self.held_out is None or len(self.held_out) < n:
            have = 0 if self.held_out is None else len(self.held_out)
            raise ValueError(
                f"noise at n = {n} needs at least {n} held-out real images, got {have}"
            )
        k = max(1, min(splits, len(self.held_out) // n))
        return [self.measure(self.held_out[i * n : (i + 1) * n], seed=i) for i in range(k)]


def classifier_info(name_or_path, meta: dict, data: str, split: str, n: int) -> dict:
    """The report's description of the classifier measures: which network, its test
    accuracy, the real images they are measured against, and that they are not FID."""
    return {"name": CLASSIFIER_NAME, "weights": str(classifier_path(name_or_path)),
            "test_accuracy": meta.get("test_accuracy", "not recorded"),
            "reference": {"data": data, "split": split, "n": n}, "note": NOT_FID}  # fmt: skip
