"""The prefetch thread (ssr_models.prefetch) and the online stream with it: same batches,
exact resume, errors raised in the consumer, a clean stop."""

from __future__ import annotations

import itertools
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from ssr_core.errors import ConfigError
from ssr_models.prefetch import prefetched
from tests.ssr_models.batches import assert_same, take
from tests.ssr_models.test_online import images, stream  # noqa: F401

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "ssr-prefetch"}


def _no_thread_left(before: set[threading.Thread]) -> bool:
    deadline = time.monotonic() + 5.0
    while _threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _threads() - before


@pytest.mark.parametrize("workers", [0, 2])
def test_same_batches_and_exact_resume_with_prefetch(images: Path, workers: int) -> None:  # noqa: F811
    plain = take(stream(images, crops_per_image=2), 5)
    ahead = stream(images, crops_per_image=2, num_workers=workers, prefetch=2)
    it = iter(ahead)
    head = [next(it) for _ in range(2)]
    time.sleep(0.2)  # let the thread run ahead: made, not taken
    assert ahead.state_dict()["step"] == 2  # the position counts only batches taken
    state = ahead.state_dict()
    it.close()
    resumed = stream(images, crops_per_image=2, num_workers=workers, prefetch=1)
    resumed.load_state_dict(state)
    assert_same(head + take(resumed, 3), plain)


def test_producer_errors_reach_the_consumer_in_order() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("shard 7 is truncated")

    got = prefetched(source(), depth=2)
    assert [next(got), next(got)] == [1, 2]
    with pytest.raises(ValueError, match="shard 7 is truncated") as info:
        next(got)
    # the original traceback: the frame that raised it, in the producer thread
    assert any(f.name == "source" for f in traceback.extract_tb(info.value.__traceback__))
    with pytest.raises(ConfigError, match="depth must be >= 0"):
        next(prefetched([1], depth=-1))
    assert list(prefetched(iter(range(5)), depth=1)) == list(range(5))  # a finite source ends


def test_online_stream_error_surfaces_with_prefetch(images: Path) -> None:  # noqa: F811
    from ssr_core.errors import InputError
    from ssr_models.online import OnlineSpec, OnlineStream

    big = OnlineStream(OnlineSpec("folder", root=str(images), depth="gt"), 64, 1, seed=0,
                       prefetch=2)
    with pytest.raises(InputError, match="smaller than the 64 px crop"):
        take(big, 1)


def test_closing_stops_the_thread_and_the_source() -> None:
    """Closing (end of training, an interrupt) stops a thread blocked on a full queue and
    closes the source; nothing more is made."""
    before = _threads()
    made: list[int] = []
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            for i in itertools.count():
                made.append(i)
                yield i
        finally:
            closed.set()

    got = prefetched(endless(), depth=2)
    assert next(got) == 0
    time.sleep(0.1)
    assert len(made) <= 4  # bounded: one taken, two queued, one in hand
    got.close()
    assert closed.is_set() and _no_thread_left(before)
    count = len(made)
    time.sleep(0.1)
    assert len(made) == count


def test_trainer_interrupt_stops_the_prefetch_thread(images: Path, tmp_path: Path) -> None:  # noqa: F811
    """A TrainingInterrupted mid-run leaves no prefetch thread behind (Trainer closes its
    stream iterator on the way out)."""
    from ssr_models import create_model
    from ssr_models.configs import load_train_config
    from ssr_models.train_events import TrainEvent
    from ssr_models.trainer import Trainer, TrainingInterrupted

    before = _threads()
    sc = load_train_config("tiny").stage("kernel")
    tcfg = sc.trainer_config(tmp_path / "run", steps=5, seed=0)
    s = stream(images, batch=sc.data.batch_size, crops_per_image=2, prefetch=2)
    trainer = Trainer(create_model(sc.model, **sc.model_overrides), tcfg, s)

    def ctrl_c(event: TrainEvent) -> None:
        if event.kind == "step" and event.data["step"] == 2:
            signal.raise_signal(signal.SIGINT)  # as a terminal's Ctrl-C: finish, save, stop

    with pytest.raises(TrainingInterrupted, match="at step 2") as info:
        trainer.fit(callback=ctrl_c)
    # while the exception (and its traceback, holding fit's frame) is still alive
    assert info.value.step == 2 and _no_thread_left(before)
    assert s.state_dict()["step"] == 2  # saved position = batches trained on


def test_prefetch_setting(images: Path) -> None:  # noqa: F811
    from ssr_models.configs import DataConfig

    assert stream(images).prefetch == 0  # auto: off on a CPU (the thread competes for cores)
    assert stream(images, prefetch=1).prefetch == 1
    with pytest.raises(ConfigError, match="prefetch must be >= 0"):
        stream(images, prefetch=-1)
    assert DataConfig(16, 2).online_prefetch is None
    with pytest.raises(ConfigError, match="online_prefetch must be null or an integer >= 0"):
        DataConfig(16, 2, online_prefetch="2")  # type: ignore[arg-type]
