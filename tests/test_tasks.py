"""The task registry: the statistics that metrics are built from, for batches of any size."""

import pytest
import torch

from emzoo.errors import ConfigError
from emzoo.tasks import TASKS, get_task


@pytest.mark.parametrize("batch", [1, 3])
def test_segmentation_stats_match_a_hand_count(batch):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, 1, 16, 16, generator=g)
    target = (torch.rand(batch, 1, 16, 16, generator=g) > 0.7).float()
    stats = get_task("segment").per_sample_stats(logits, target)
    pred, truth = logits > 0, target > 0.5
    expected = torch.stack(
        [(pred & truth).flatten(1).sum(1), (pred & ~truth).flatten(1).sum(1), (~pred & truth).flatten(1).sum(1)], 1
    )
    assert stats.shape == (batch, 3) and torch.equal(stats, expected.float())
    dice = get_task("segment").summarize(stats)["dice"]
    tp, fp, fn = expected.sum(0).tolist()
    assert dice == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_restoration_stats_and_selection():
    task = get_task("denoise")
    out, target = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    assert task.summarize(task.per_sample_stats(out, target))["l1"] == pytest.approx(1.0)
    assert task.selection == ("l1", False) and task.is_better(0.1, 0.2) and not task.is_better(0.3, 0.2)
    assert get_task("segment").is_better(0.9, 0.8)


def test_unknown_tasks_are_errors_not_restoration():
    with pytest.raises(ConfigError, match="task 'colourise'"):
        get_task("colourise")
    assert get_task(None) is TASKS["pretext"]
    assert TASKS["super-res"].output_scale == 2 and TASKS["segment"].segmentation
