"""Pretraining and fine-tuning through Accelerate."""

from emzoo.train.trainer import TrainConfig, Trainer, evaluate_model, run

__all__ = ["TrainConfig", "Trainer", "evaluate_model", "run"]
