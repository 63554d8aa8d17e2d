"""Tests for ssr_models.trainer with a toy model (the real families are tested elsewhere)."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.errors import ConfigError
from ssr_models.batch import Batch
from ssr_models.data import TrainingStream, validation_batches
from ssr_models.trainer import (
    NonFiniteError,
    Trainer,
    TrainerConfig,
    end_distributed,
    load_checkpoint,
)

from .conftest import CROP


class Toy(nn.Module):
    """Predict the kernel field from LR (a DKENet stand-in); dropout makes resume use the RNG."""

    def __init__(self, nan_at: int = 0, nan_grad_at: int = 0) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Conv2d(8, 3, 3, padding=1))
        self.nan_at, self.nan_grad_at, self.calls = nan_at, nan_grad_at, 0

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.l1_loss(self.body(batch.lr), batch.kernel_field)
        if self.training:
            self.calls += 1
            if self.calls == self.nan_at:
                loss = loss * float("nan")
            if self.calls == self.nan_grad_at:  # finite value, NaN gradient (d sqrt at 0)
                loss = loss + (0.0 * self.body[0].weight.sum()).sqrt()
        return loss, {"l1": float(loss.detach())}


def config(out: Path, **kw: Any) -> TrainerConfig:
    base: dict[str, Any] = dict(steps=8, lr=5e-3, log_every=1, val_every=0, ckpt_every=4,
                                ema_decay=0.9, seed=0, out_dir=str(out), tensorboard=False)
    return TrainerConfig(**{**base, **kw})


def stream(shards: Path, rank: int = 0, world_size: int = 1) -> TrainingStream:
    return TrainingStream(shards, CROP, 2, seed=0, rank=rank, world_size=world_size)


def model(seed: int = 0, **kw: int) -> Toy:
    torch.manual_seed(seed)
    return Toy(**kw)


def metrics(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_decreases_and_files(shard_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    val = validation_batches(shard_dir, CROP, 3)
    trainer = Trainer(model(), config(out, steps=40, val_every=20, ckpt_every=20,
                                      tensorboard=True), stream(shard_dir), val)
    assert trainer.fit() == 40
    rows = [r for r in metrics(out) if "train/loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 41))
    first = sum(r["train/loss"] for r in rows[:5]) / 5
    last = sum(r["train/loss"] for r in rows[-5:]) / 5
    assert last < 0.8 * first
    assert [r["step"] for r in metrics(out) if "val/loss" in r] == [20, 40]
    names = sorted(p.name for p in out.iterdir())
    assert names[:5] == ["best.pt", "ckpt-0000020.pt", "ckpt-0000040.pt", "config.json",
                         "last.pt"]
    assert not [n for n in names if n.endswith(".tmp")]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 40 and (out / "last.pt").samefile(out / "ckpt-0000040.pt")
    assert set(ckpt) >= {"model", "ema", "optimizer", "scheduler", "scaler", "per_rank"}
    assert set(ckpt["per_rank"][0]["rng"]) >= {"torch", "numpy", "python"}
    assert ckpt["per_rank"][0]["data"]["batch"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["trainer"]["steps"] == 40 and cfg["model_class"].endswith("Toy")
    if _has_tensorboard():
        assert any((out / "tb").iterdir())


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_ema_differs_and_is_used_for_validation(shard_dir: Path, tmp_path: Path) -> None:
    val = validation_batches(shard_dir, CROP, 3)
    trainer = Trainer(model(), config(tmp_path), stream(shard_dir), val)
    trainer.fit()
    raw = dict(trainer.model.named_parameters())
    assert any(not torch.equal(p, raw[n]) for n, p in trainer.ema.named_parameters())

    def mean_loss(m: nn.Module) -> float:
        m.eval()
        with torch.no_grad():
            losses = [float(m.training_step(b)[0]) for b in val]
        return sum(losses) / len(losses)

    got = trainer.validate()["val/loss"]
    assert got == pytest.approx(mean_loss(trainer.ema), rel=1e-6)
    assert got != pytest.approx(mean_loss(trainer.model), rel=1e-6)


def test_resume_after_kill_is_bitwise_identical(shard_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(model(), config(tmp_path / "a"), stream(shard_dir))
    straight.fit()

    class Killed(Exception):
        pass

    class KillAfter:
        """A stream that dies when the trainer asks for batch 5 (after the step-4 ckpt)."""

        def __init__(self, inner: TrainingStream) -> None:
            self.inner = inner

        def state_dict(self) -> dict[str, Any]:
            return self.inner.state_dict()

        def __iter__(self) -> Any:
            for i, batch in enumerate(self.inner):
                if i == 4:
                    raise Killed
                yield batch

    with pytest.raises(Killed):
        Trainer(model(), config(tmp_path / "b"), KillAfter(stream(shard_dir))).fit()
    resumed = Trainer(model(seed=123), config(tmp_path / "b"), stream(shard_dir))
    assert resumed.resume(tmp_path / "b" / "last.pt") == 4
    assert resumed.fit() == 8
    for mine, ref in ((resumed.model, straight.model), (resumed.ema, straight.ema)):
        for (name, p), q in zip(mine.state_dict().items(), ref.state_dict().values(),
                                strict=True):
            assert torch.equal(p, q), name
    opt_a, opt_b = (t.optimizer.state_dict()["state"] for t in (resumed, straight))
    assert all(torch.equal(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"]) for k in opt_a)
    assert [r["train/loss"] for r in metrics(tmp_path / "b")] == [
        r["train/loss"] for r in metrics(tmp_path / "a")]


def test_stop_at_then_resume(shard_dir: Path, tmp_path: Path) -> None:
    first = Trainer(model(), config(tmp_path, ckpt_every=0), stream(shard_dir))
    assert first.fit(stop_at=3) == 3
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 3
    again = Trainer(model(), config(tmp_path, ckpt_every=0), stream(shard_dir))
    again.resume(tmp_path / "last.pt")
    assert again.fit() == 8


def test_resume_with_more_steps_continues_the_schedule(shard_dir: Path, tmp_path: Path) -> None:
    # Issue 10 #11: a 20-step cosine stopped at step 10 and resumed with 40 steps used to jump
    # to the 40-step curve (rate up from 0.67 to 0.89 of the peak); now it decays on from
    # where it was and reaches 0 at step 40.
    first = Trainer(model(), config(tmp_path, steps=20, warmup_steps=2, ckpt_every=0),
                    stream(shard_dir))
    first.fit(stop_at=10)
    again = Trainer(model(), config(tmp_path, steps=40, warmup_steps=2, ckpt_every=0),
                    stream(shard_dir))
    assert again.resume(tmp_path / "last.pt") == 10 and again.resume_note is None
    assert again.fit() == 40
    lrs = [r["train/lr"] for r in metrics(tmp_path) if "train/lr" in r]
    assert len(lrs) == 40
    peak = 5e-3
    assert lrs[10] < lrs[9] < lrs[8]  # no jump up at the resume step (step 11)
    assert all(a > b for a, b in zip(lrs[9:-1], lrs[10:], strict=True))
    assert lrs[-1] < 1e-3 * peak
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["steps"] == 40


def test_resume_refuses_other_settings(shard_dir: Path, tmp_path: Path) -> None:
    Trainer(model(), config(tmp_path, steps=4), stream(shard_dir)).fit()
    changed = Trainer(model(), config(tmp_path, steps=8, lr=1e-3, ema_decay=0.5),
                      stream(shard_dir))
    with pytest.raises(ConfigError, match=r"only the step count --steps, --max-minutes and "
                                          r"--keep-last may change\): "
                                          r"trainer.ema_decay: 0.9 -> 0.5; trainer.lr: 0.005 -> 0.001"):
        changed.resume(tmp_path / "last.pt")
    assert json.loads((tmp_path / "config.json").read_text())["trainer"]["lr"] == 5e-3


@pytest.mark.parametrize("kind", ["loss", "grad"])
def test_non_finite_stops_and_keeps_last_good(shard_dir: Path, tmp_path: Path,
                                              kind: str) -> None:
    toy = model(**({"nan_at": 6} if kind == "loss" else {"nan_grad_at": 6}))
    trainer = Trainer(toy, config(tmp_path, ckpt_every=2, grad_clip=None), stream(shard_dir))
    with pytest.raises(NonFiniteError, match=f"non-finite {kind}.* step 6"):
        trainer.fit()
    assert trainer.step == 5
    good = load_checkpoint(tmp_path / "last.pt")
    assert good["step"] == 4 and not (tmp_path / "ckpt-0000006.pt").exists()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(v).all() for v in good["model"].values())


def test_failed_save_leaves_previous_checkpoint(shard_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(model(), config(tmp_path, steps=2, ckpt_every=2), stream(shard_dir))
    trainer.fit()
    before = (tmp_path / "last.pt").read_bytes()

    def broken_save(obj: Any, f: Any) -> None:
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    trainer.step = 3
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["ckpt-0000002.pt", "last.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_config_and_argument_errors(shard_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="steps"):
        TrainerConfig(steps=0)
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainerConfig(steps=1, ema_decay=1.0)
    with pytest.raises(ConfigError, match="one-shot"):
        Trainer(model(), config(tmp_path), stream(shard_dir), iter([]))
    with pytest.raises(ConfigError, match="training_step"):
        Trainer(nn.Linear(1, 1), config(tmp_path), stream(shard_dir))
    with pytest.raises(ConfigError, match="world_size"):
        Trainer(model(), config(tmp_path), stream(shard_dir, rank=0, world_size=2))


def test_amp_modes_and_yaml_booleans() -> None:
    assert TrainerConfig(steps=1).amp == "off"
    assert TrainerConfig(steps=1, amp=True).amp == "fp16"  # YAML `amp: true` (older configs)
    assert TrainerConfig(steps=1, amp=False).amp == "off"  # YAML 1.1 reads `amp: off` as False
    assert TrainerConfig(steps=1, amp="bf16").amp == "bf16"
    with pytest.raises(ConfigError, match=r"amp must be one of off, fp16, bf16, got 'fp32'"):
        TrainerConfig(steps=1, amp="fp32")
    with pytest.raises(ConfigError, match="compile must be true or false"):
        TrainerConfig(steps=1, compile="yes")


def test_autocast_dtype_per_mode_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """fp16 and bf16 map to their autocast dtypes on CUDA (the Trainer enables the GradScaler
    only for float16); a GPU without bfloat16 refuses bf16 with the way out."""
    from ssr_models.precision import amp_dtype as _amp_dtype

    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert _amp_dtype("off", cuda) is None
    assert _amp_dtype("fp16", cuda) is torch.float16
    assert _amp_dtype("bf16", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla V100")
    with pytest.raises(ConfigError, match=r"amp='bf16' needs .*Tesla V100 has none: use amp: fp16"):
        _amp_dtype("bf16", cuda)


def test_bf16_on_cpu_is_ignored_with_a_warning(shard_dir: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="amp='bf16' is ignored"):
        trainer = Trainer(model(), config(tmp_path, amp="bf16", steps=2), stream(shard_dir))
    assert not trainer.use_amp and not trainer.scaler.is_enabled()
    assert trainer.fit() == 2


def test_adamw_uses_foreach_on_cpu_and_fused_on_cuda(shard_dir: Path, tmp_path: Path) -> None:
    from ssr_models.precision import kernel_choice as _kernel_choice

    trainer = Trainer(model(), config(tmp_path), stream(shard_dir))
    group = trainer.optimizer.param_groups[0]
    assert group["foreach"] is True and not group["fused"]
    assert _kernel_choice(torch.device("cuda", 1)) == {"fused": True, "foreach": False}


def test_compile_option_trains_the_same_steps(shard_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """compile=True sends the network (Toy.body: Toy defines no forward) through torch.compile
    and changes no number. Dynamo really traces it; a counting backend that runs the graph
    eagerly stands in for inductor (no C++ compiler runs here) and shows one graph for the
    three steps: no graph break and no recompile (compiling the whole training step broke the
    graph at the float() of the logs). The EMA copy stays eager."""
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters

    real_compile = torch.compile
    calls: list[Any] = []
    backend = CompileCounter()

    def counting_compile(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((fn, kwargs))
        return real_compile(fn, *args, **{**kwargs, "backend": backend})

    monkeypatch.setattr(torch, "compile", counting_compile)
    plain = Trainer(model(), config(tmp_path / "a", steps=3), stream(shard_dir))
    plain.fit()
    torch._dynamo.reset()
    counters.clear()
    compiled = Trainer(model(), config(tmp_path / "b", steps=3, compile=True), stream(shard_dir))
    compiled.fit()
    assert [(fn.__self__, kw) for fn, kw in calls] == [(compiled.model.body, {"dynamic": False})]
    assert backend.frame_count == 1 and backend.op_count > 0
    assert not counters["graph_break"]
    assert getattr(compiled.ema.body, "_compiled_call_impl", None) is None
    got = [r["train/loss"] for r in metrics(tmp_path / "b")]
    want = [r["train/loss"] for r in metrics(tmp_path / "a")]
    assert got == pytest.approx(want, rel=1e-5)
    assert set(compiled.model.state_dict()) == set(plain.model.state_dict())


# ---- DDP: two CPU processes, gloo over loopback ---------------------------------------------

def _ddp_train(rank: int, world_size: int, shards: str, out: str) -> None:
    toy = model(seed=rank)  # different inits: DDP must broadcast rank 0's weights
    # accumulation syncs on the last batch only; rank 0 alone validates and decides best.pt,
    # which every rank must join (a hang here fails the test's deadline)
    val = validation_batches(Path(shards), CROP, 3) if rank == 0 else None
    trainer = Trainer(toy, config(Path(out), steps=4, ckpt_every=2, accum_steps=2, val_every=1),
                      stream(Path(shards), rank, world_size), val)
    trainer.fit()
    torch.save({"model": trainer.model.state_dict(), "ema": trainer.ema.state_dict()},
               Path(out) / f"rank{rank}.weights")


def _ddp_worker(rank: int, world_size: int, port: int, shards: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size)
    try:
        _ddp_train(rank, world_size, shards, out)  # its Trainer is garbage when this returns
    finally:
        end_distributed()  # as ssr-train does under torchrun


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_ddp_two_processes_end_identical(shard_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.multiprocessing as mp

    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ctx = mp.start_processes(_ddp_worker, args=(2, _free_port(), str(shard_dir), str(tmp_path)),
                             nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail("DDP workers did not finish within 120 s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                os.kill(p.pid, 9)
    w0, w1 = (torch.load(tmp_path / f"rank{r}.weights", weights_only=True) for r in range(2))
    for part in ("model", "ema"):
        for name, p in w0[part].items():
            assert torch.equal(p, w1[part][name]), (part, name)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 4 and ckpt["world_size"] == 2 and len(ckpt["per_rank"]) == 2
    assert load_checkpoint(tmp_path / "best.pt")["best"]["metric"] == "loss"
    assert torch.equal(ckpt["model"]["body.0.weight"], w0["model"]["body.0.weight"])
    assert len([r for r in metrics(tmp_path) if "train/loss" in r]) == 4  # rank 0 only
