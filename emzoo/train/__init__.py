"""Training: the run's configuration, the Accelerate loop, its folder, evaluation and the
measured choice of precision."""

from emzoo.train.config import TrainConfig
from emzoo.train.evaluation import evaluate_model
from emzoo.train.trainer import Trainer, run

__all__ = ["TrainConfig", "Trainer", "evaluate_model", "run"]
