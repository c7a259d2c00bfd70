"""LR schedules, the EMA and deterministic loaders, as units."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import TensorDataset

from audiotools import distributed
from audiotools.config import ScheduleConfig
from audiotools.errors import ConfigError
from audiotools.solvers.ema import ModelEMA
from audiotools.solvers.loading import EpochLoader
from audiotools.solvers.optim import build_scheduler


def _lrs(cfg: ScheduleConfig, total: int, steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, cfg, total)
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_schedules():
    warm = _lrs(ScheduleConfig(name="linear_warmup", warmup_steps=4), 10, 6)
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
    cosine = _lrs(ScheduleConfig(name="cosine", min_lr_ratio=0.1), 10, 11)
    assert cosine[0] == 1.0 and cosine[5] == pytest.approx(0.55) and cosine[10] == 0.1
    step = _lrs(ScheduleConfig(name="step", step_size=3, gamma=0.5), 10, 7)
    assert step == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    inverse = _lrs(ScheduleConfig(name="inverse_sqrt", warmup_steps=4), 10, 16)
    assert inverse[3] == 1.0 and inverse[15] == pytest.approx(0.5)
    assert build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1),
                           ScheduleConfig(), 10) is None


def test_a_cosine_trained_further_follows_its_new_length(caplog):
    """LambdaLR restored the multiplier's total from the checkpoint: the epochs added to a
    finished XP trained at the old cosine's floor (0)."""
    cfg = ScheduleConfig(name="cosine")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = build_scheduler(optimizer, cfg, 10)
    for _ in range(10):
        optimizer.step()
        first.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
    state = first.state_dict()
    again = build_scheduler(optimizer, cfg, 10)
    again.load_state_dict(state)  # same length: exactly where it was, nothing said
    assert again.last_epoch == 10 and again.get_last_lr() == first.get_last_lr()
    assert not caplog.records
    longer = build_scheduler(optimizer, cfg, 20)
    longer.load_state_dict(state)
    optimizer.step()
    longer.step()
    assert longer.last_epoch == 11
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 11 / 20)))
    assert "spans 20 updates now (10 when the checkpoint was written" in caplog.text


def test_inverse_schedule_is_stable_audio_tools_inverse_lr():
    """lr * (1 - w^(t+1)) * max(floor, (1 + t / inv_gamma)^-power), values worked by hand."""
    values = _lrs(ScheduleConfig(name="inverse", inv_gamma=10, power=0.5, exp_warmup=0.5),
                  100, 31)
    assert values[0] == pytest.approx(0.5)
    assert values[1] == pytest.approx(0.75 * 1.1 ** -0.5)
    assert values[30] == pytest.approx((1 - 0.5 ** 31) * 4 ** -0.5)
    floored = _lrs(ScheduleConfig(name="inverse", inv_gamma=1, power=1, min_lr_ratio=0.25),
                   100, 10)
    assert floored[1] == pytest.approx(0.5) and floored[3] == floored[9] == 0.25


def test_ema_warmup_decay(dora_dir):
    from tests.solvers.helpers import build, make_xp
    solver = build(make_xp("optim.ema.use=true", "optim.ema.decay=0.99",
                           "optim.ema.warmup_power=0.75"))
    decays = []
    for update in (1, 2, 16, 10**6):
        solver._updates_done = update
        decays.append(solver._ema_decay())
    solver.close()
    assert decays == pytest.approx([0.0, 1 - 2 ** -0.75, 0.875, 0.99])


def test_ema_tracks_weights():
    module = torch.nn.Linear(2, 1)
    ema = ModelEMA(module, decay=0.5)
    start = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.add_(2.0)
    ema.update()
    assert torch.allclose(ema.weights()["weight"], start + 1.0)
    ema.update(decay=0.0)  # a warm-up decay of 0 copies the weights
    assert torch.allclose(ema.weights()["weight"], start + 2.0)


@pytest.mark.parametrize(("buffers", "expected_mean"), [("average", 1.0), ("copy", 2.0)])
def test_ema_averages_or_copies_floating_buffers(buffers, expected_mean):
    norm = torch.nn.BatchNorm1d(1)
    ema = ModelEMA(norm, decay=0.5, buffers=buffers)
    with torch.no_grad():
        norm.weight.add_(2.0)
        norm.running_mean.fill_(2.0)
    norm.num_batches_tracked.fill_(7)
    ema.update()
    weights = ema.weights()
    assert weights["weight"].item() == pytest.approx(2.0)  # parameters are always averaged
    assert weights["running_mean"].item() == pytest.approx(expected_mean)
    assert weights["num_batches_tracked"].item() == 7  # integer buffers are always copied


def _ids(loader: EpochLoader, epoch: int) -> list[int]:
    loader.set_epoch(epoch)
    return [int(x) for batch in loader for x in batch[0]]


def test_loader_order_depends_only_on_seed_and_epoch():
    data = TensorDataset(torch.arange(40))
    first = EpochLoader(data, batch_size=8, shuffle=True, num_workers=0, seed=3)
    second = EpochLoader(data, batch_size=8, shuffle=True, num_workers=2, seed=3)
    assert _ids(first, 1) == _ids(second, 1)
    assert _ids(first, 1) != _ids(first, 2)
    assert sorted(_ids(first, 2)) == list(range(40))
    fixed = EpochLoader(data, batch_size=8, shuffle=False, num_workers=0, seed=3)
    assert _ids(fixed, 5) == list(range(40))


def test_global_batch_must_divide_across_processes(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    data = TensorDataset(torch.arange(40))
    with pytest.raises(ConfigError, match="batch_size=15 is the global batch"):
        EpochLoader(data, batch_size=15, shuffle=True, num_workers=0, seed=0)
    loader = EpochLoader(data, batch_size=8, shuffle=False, num_workers=0, seed=0)
    assert _ids(loader, 0) == list(range(1, 40, 2))
    with pytest.raises(ConfigError, match="larger than the 40 items"):
        EpochLoader(data, batch_size=128, shuffle=True, num_workers=0, seed=0)


@pytest.mark.parametrize("rank,padding", [(0, [False] * 4), (1, [False, False, False, True])])
def test_the_copies_that_pad_an_evaluation_split_are_known(monkeypatch, rank, padding):
    """7 items over 2 ranks: rank 1 reads 1, 3, 5 and item 0 again, which a metric exact
    over the split (the classifier's confusion matrix) leaves out."""
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    loader = EpochLoader(TensorDataset(torch.arange(7)), batch_size=4, shuffle=False,
                         num_workers=0, seed=0)
    batches = [batch.tolist() for batch, in loader]
    assert sum(batches, []) == ([0, 2, 4, 6] if rank == 0 else [1, 3, 5, 0])
    rows = [loader.padding_rows(index, len(batch)).tolist()
            for index, batch in enumerate(batches)]
    assert sum(rows, []) == padding
    training = EpochLoader(TensorDataset(torch.arange(7)), batch_size=2, shuffle=True,
                           num_workers=0, seed=0)
    assert not training.padding_rows(0, 1).any()  # its tail is dropped, not padded


def test_streaming_datasets_get_the_epoch_and_no_sampler():
    class Stream(torch.utils.data.IterableDataset):
        def __init__(self):
            self.epoch = None

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return 12

        def __iter__(self):
            generator = torch.Generator().manual_seed(self.epoch)
            return iter(torch.randperm(12, generator=generator).tolist())

    stream = Stream()
    loader = EpochLoader(stream, batch_size=4, shuffle=True, num_workers=0, seed=0)
    loader.set_epoch(3)
    first = [x.tolist() for x in loader]
    loader.set_epoch(3)
    assert [x.tolist() for x in loader] == first and len(loader) == 3


def test_an_error_in_a_loader_worker_reads_as_its_own_message():
    """It reached the log as "Caught ConfigError in DataLoader worker process 0. Original
    Traceback (most recent call last): ..." with the worker's frames."""
    class Damaged(TensorDataset):
        def __getitem__(self, index):
            raise ConfigError(f"item {index}: damaged pre-encoded file; delete it")

    loader = EpochLoader(Damaged(torch.arange(4)), batch_size=2, shuffle=False, num_workers=1,
                         seed=0)
    with pytest.raises(ConfigError) as raised:
        list(loader)
    assert str(raised.value) == "item 0: damaged pre-encoded file; delete it"
