"""Training infrastructure, in the order a run meets it:

* ``config``: ``TrainConfig``, the defaults per (data kind, method), named presets;
* ``build``: the data, the network F in its parameterization, the optimiser, the objective;
* ``checkpoint``, ``pretrained``, ``runs``: run directories and shipped checkpoints on disk;
* ``loop``: ``Trainer``, the training loop of Algorithms 2 and 3 as a generator.
"""

from .build import build_model, build_net, build_objective, build_optimizer, data_shape, load_data
from .config import (
    DEFAULTS,
    METHODS,
    NETS,
    OPTIMIZERS,
    PRESETS,
    TrainConfig,
    data_kind,
)
from .loop import Trainer, TrainingDiverged, TrainState
from .runs import (
    in_data_units,
    load_model,
    load_run,
    load_teacher,
    load_trained,
    require_consistency_model,
)

__all__ = [
    "TrainConfig", "DEFAULTS", "PRESETS", "METHODS", "NETS", "OPTIMIZERS", "data_kind",
    "load_data", "data_shape", "build_net", "build_model", "build_optimizer", "build_objective",
    "Trainer", "TrainState", "TrainingDiverged",
    "load_run", "load_model", "load_trained", "load_teacher", "require_consistency_model",
    "in_data_units",
]  # fmt: skip
