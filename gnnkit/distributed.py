"""Data-parallel training on ``torch.distributed``, as launched by ``torchrun``.

gnnkit grows no cluster code of its own: ``torchrun`` starts one process per device and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address; :func:`init` reads them and opens the process
group (gloo on CPU, NCCL on CUDA), with a timeout so that a lost rank stops the others with an error
instead of a hang.  Models are wrapped in ``DistributedDataParallel`` (gradients averaged every step);
data is sharded by rank (``DistributedSampler`` for graphs, seed nodes / positive edges otherwise).

Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) everything here is a no-op: ``ctx.world_size == 1``.
"""
from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

DEFAULT_TIMEOUT_S = 120.0


class DistributedError(RuntimeError):
    """A collective failed: a rank died or stopped answering within the process group's timeout."""


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str) -> torch.device:
        """The device of this rank: ``cuda:LOCAL_RANK`` when ``requested`` is CUDA, else ``requested``."""
        dev = torch.device(requested)
        if dev.type == "cuda" and self.enabled:
            return torch.device("cuda", self.local_rank)
        return dev

    def shard(self, t: Tensor) -> Tensor:
        """This rank's share of ``t`` along dim 0 (every ``world_size``-th row from ``rank``)."""
        return t[self.rank::self.world_size] if self.enabled else t

    def share_weight(self, local: int, total: int) -> float:
        """The factor on a rank's mean loss over ``local`` of ``total`` items (its :meth:`shard` of them) that
        makes DDP's average of the ranks' gradients the gradient of the mean over all ``total``, also when the
        shares differ: ``local * world_size / total``; 1.0 in one process."""
        return local * self.world_size / max(total, 1)

    def equal_share(self, t: Tensor) -> Tensor:
        """This rank's share of ``t`` after dropping its last ``len(t) % world_size`` rows, so every rank gets
        the same number (and takes the same number of steps); all of ``t`` in one process."""
        if not self.enabled:
            return t
        return self.shard(t[:t.size(0) // self.world_size * self.world_size])

    def barrier(self) -> None:
        if self.enabled:
            _guard(dist.barrier)

    def all_gather_object(self, obj: Any) -> List[Any]:
        if not self.enabled:
            return [obj]
        out: List[Any] = [None] * self.world_size
        _guard(dist.all_gather_object, out, obj)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        _guard(dist.broadcast_object_list, box, src)
        return box[0]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (BatchNorm running statistics) into every rank's ``module``: DDP copies them only
        at the start of a training forward, so after an epoch each rank holds the statistics of its own last
        batches; an evaluation sharded over ranks must score rank 0's model (the one saved)."""
        if not self.enabled:
            return
        for b in module.buffers():
            _guard(dist.broadcast, b, 0)

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        _guard(dist.all_reduce, t)
        return float(t) / self.world_size

    def _comm_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


def rank_seed(seed: int, ctx: DistContext, epoch: int = 0) -> int:
    """Seed of a per-rank random stream: rank 0 keeps ``seed`` (a 1-process run is unchanged); a stream re-seeded
    from an ``epoch`` (a resume with another number of processes) gets another."""
    return seed if ctx.rank == 0 and epoch == 0 else seed + 7919 * ctx.rank + 104729 * epoch


def rng_state(device: torch.device) -> Dict[str, object]:
    """The process's global random streams (dropout draws from them): CPU, and ``device``'s when CUDA."""
    state: Dict[str, object] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: Dict[str, object], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (the CUDA stream only on a CUDA device)."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def rank_streams(ctx: DistContext, gens: Dict[str, torch.Generator], device: torch.device) -> Optional[list]:
    """Every rank's random streams — its global ones (:func:`rng_state`: dropout) and its trainer's ``gens`` —
    gathered for rank 0's checkpoint (a collective: every rank calls it at the same point); None in one
    process, where the checkpoint's own ``rng`` and trainer state are the process's."""
    if not ctx.enabled:
        return None
    return ctx.all_gather_object({"rng": rng_state(device),
                                  "generators": {k: g.get_state() for k, g in gens.items()}})


def restore_rank_streams(saved: Optional[list], ctx: DistContext, gens: Dict[str, torch.Generator],
                         device: torch.device) -> bool:
    """This rank's streams from :func:`rank_streams`' list when the run resumes with as many processes as saved
    it (then it continues exactly as the uninterrupted run); False otherwise (another number of processes, or
    one process: rank 0's streams, already restored, and fresh ones for the other ranks)."""
    if not ctx.enabled or not saved or len(saved) != ctx.world_size:
        return False
    mine = saved[ctx.rank]
    set_rng_state(mine["rng"], device)
    for name, state in mine["generators"].items():
        if name in gens:
            gens[name].set_state(state)
    return True


_COMM_WORDS = ("gloo", "nccl", "connection reset", "connection closed", "timed out", "timeout", "broken pipe")


def is_comm_error(e: BaseException) -> bool:
    """Whether ``e`` is a failed collective (a peer gone or silent), not a bug of the step itself."""
    backend_error = getattr(dist, "DistBackendError", None)
    if backend_error is not None and isinstance(e, backend_error):
        return True
    return isinstance(e, RuntimeError) and any(w in str(e).lower() for w in _COMM_WORDS)


def comm_failure(e: BaseException, where: str, resumable: bool = True) -> DistributedError:
    """The :class:`DistributedError` to raise for the failed collective ``e``."""
    rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))
    then = "restart it with --resume (any number of processes)" if resumable else "start it again"
    return DistributedError(
        f"{where} failed on rank {rank}: another rank died or stopped answering ({type(e).__name__}: "
        f"{str(e).splitlines()[0][:200]}); the run stops here - {then}")


def _guard(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except RuntimeError as e:
        if is_comm_error(e):
            raise comm_failure(e, f"a collective ({getattr(fn, '__name__', fn)})") from e
        raise


_CTX: Optional[DistContext] = None


def init(device: str = "cpu", timeout_s: Optional[float] = None) -> DistContext:
    """The process group of this ``torchrun`` worker, opened once (a no-op context without ``torchrun``).

    ``timeout_s`` (default ``$GNNKIT_DIST_TIMEOUT`` or 120 s): how long a collective waits for a silent
    rank before the run fails with :class:`DistributedError`."""
    global _CTX
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    if _CTX is not None and dist.is_initialized():
        return _CTX
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.device(device).type == "cuda"
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if timeout_s is None:
        timeout_s = float(os.environ.get("GNNKIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        # closed before the interpreter tears down: a gloo group left open at exit aborted a rank now and then
        # ("terminate called without an active exception", SIGABRT after a finished run; a library user calling
        # gnnkit.linkpred.fit under torchrun never closes it)
        atexit.register(shutdown)
    _CTX = DistContext(rank=rank, world_size=world, local_rank=local_rank, backend=backend)
    return _CTX


def world_size() -> int:
    """The processes of a ``torchrun`` job, 1 for a plain process (reads the environment; opens nothing)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` job, or a plain process (reads the environment; opens nothing)."""
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    """Close the process group opened by :func:`init` (if any)."""
    global _CTX
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CTX = None


def wrap(module: torch.nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when ``ctx`` spans several processes, else ``module``.

    ``find_unused_parameters``: for models holding parameters a step does not use (OGB's virtual node
    keeps one initial embedding per layer and reads the first only)."""
    if not ctx.enabled or sum(p.numel() for p in module.parameters() if p.requires_grad) == 0:
        return module
    from torch.nn.parallel import DistributedDataParallel
    ids = [ctx.local_rank] if ctx.backend == "nccl" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)
