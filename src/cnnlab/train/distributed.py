"""Training on several processes and machines with PyTorch's own engine: torchrun
(``torch.distributed.elastic``) starts the processes and restarts them after a failure,
DistributedDataParallel averages the gradients (gloo on the CPU, NCCL on CUDA).

cnnlab's part is small: read where this process stands from torchrun's environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
``TORCHELASTIC_RESTART_COUNT``), join the process group, and give the loop the few
collective operations it needs: one flag per step (stop together), the sums of an
evaluation, the generator states of every rank for a checkpoint.  Each rank draws its shard
of every global batch from :class:`~cnnlab.data.BatchPipeline` (``rank=``,
``world_size=``); only rank 0 prints and writes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnlab.errors import CnnlabError

__all__ = [
    "World",
    "all_gather_states",
    "all_reduce_max",
    "all_reduce_sum",
    "broadcast_text",
    "restart_count",
    "start",
    "stop",
    "torchrun_command",
    "world",
]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` processes, ``local_rank`` of
    ``local_size`` on this machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1


def world() -> World:
    """Where torchrun put this process (``World()`` when it was not started by torchrun)."""
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return World()
    try:
        return World(
            rank=int(os.environ["RANK"]),
            size=int(os.environ["WORLD_SIZE"]),
            local_rank=int(os.environ.get("LOCAL_RANK", 0)),
            local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        )
    except ValueError:
        raise CnnlabError(
            "RANK / WORLD_SIZE / LOCAL_RANK are not integers; start distributed training "
            "with torchrun (or cnnlab train --nproc N)"
        ) from None


def restart_count() -> int:
    """How many times torchrun has restarted the worker group (0 on the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def start(device_type: str) -> str:
    """Join the process group torchrun's environment describes: NCCL for CUDA, gloo for
    the CPU.  Returns the backend."""
    backend = "nccl" if device_type == "cuda" else "gloo"
    if dist.is_initialized():
        return backend
    attempt = restart_count()
    if attempt and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # After a restart the agent's store still holds the keys of the failed attempt (the
        # dead workers' addresses), and a plain env:// start can read those: key this
        # attempt's group apart.
        w = world()
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), w.size, is_master=False
        )
        dist.init_process_group(
            backend,
            store=dist.PrefixStore(f"cnnlab/attempt-{attempt}", store),
            rank=w.rank,
            world_size=w.size,
        )
    else:
        dist.init_process_group(backend)
    return backend


def stop(together: bool = False) -> None:
    """Leave the process group; ``together``: after a barrier, so that every rank exits at
    the same moment (a completed run: every rank is here).  torchrun's agent leaves as soon
    as its own workers have; when the agent that hosts the c10d rendezvous store leaves
    while another one's worker is still finishing (rank 0 writing the last files), that
    agent's next poll of the store fails and it exits with an error although its run
    succeeded."""
    if dist.is_initialized():
        if together and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_max(value: int) -> int:
    """The largest ``value`` over the ranks (the value itself on one process)."""
    if not _active():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_reduce_sum(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor summed over the ranks (new tensors, on each tensor's device)."""
    if not _active():
        return [t.clone() for t in tensors]
    out = []
    for t in tensors:
        r = t.detach().to(_device()).clone()
        dist.all_reduce(r, op=dist.ReduceOp.SUM)
        out.append(r.to(t.device))
    return out


def all_gather_states(states: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Every rank's ``states`` (generator states: equal sizes on every rank), in rank order."""
    if not _active():
        return [states]
    gathered: list[dict[str, torch.Tensor]] = [{} for _ in range(dist.get_world_size())]
    for key in sorted(states):
        t = states[key].to(_device())
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        for r, p in enumerate(parts):
            gathered[r][key] = p.cpu()
    return gathered


def broadcast_text(text: str | None) -> str:
    """Rank 0's ``text`` on every rank."""
    if not _active():
        return text or ""
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0] or ""


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs ``cnnlab argv`` as ``nproc`` processes on this machine with
    torchrun (``--standalone``: a rendezvous on a free local port)."""
    if nproc < 1:
        raise CnnlabError(f"--nproc {nproc}: expected an int >= 1")
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cnnlab",
        *argv,
    ]
