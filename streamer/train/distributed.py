"""Training on several processes: `torchrun --nproc_per_node N -m streamer.train.recipe ...`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `streamer train`) this is
a single process and every collective below is a no-op. Backend: nccl when CUDA is there
(one GPU per local rank), gloo on CPUs.

How the recipe shares the work: every rank builds the same model from the same seed (and
DistributedDataParallel broadcasts rank 0's weights anyway); at step s rank r mixes items
(s * N + r) * B ... (s * N + r + 1) * B - 1, so the N ranks together see exactly the items one
process with batch N * B would, and the averaged gradient is that process's gradient. Rank 0
alone decides when to stop and when to checkpoint (broadcast each step, so a wall-clock budget
cannot leave one rank waiting for another) and alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist
            if self.backend == "nccl":
                dist.barrier(device_ids=[self.local_rank])
            else:
                dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of `value` over all ranks."""
        if self.size == 1:
            return value
        import torch
        import torch.distributed as dist
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor[0]) / self.size

    def sum(self, value: int) -> int:
        if self.size == 1:
            return value
        import torch
        import torch.distributed as dist
        tensor = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor)
        return int(tensor[0])

    def from_main(self, values: list[float]) -> list[float]:
        """Rank 0's `values` on every rank."""
        if self.size == 1:
            return values
        import torch
        import torch.distributed as dist
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, 0)
        return tensor.tolist()

    def close(self) -> None:
        if self.size > 1:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


def setup(timeout_minutes: float = 120.0) -> World:
    """Join the process group torchrun describes in the environment, or a world of one.

    The generous timeout covers ranks waiting at the barrier while a large corpus is converted.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", f"cuda:{local_rank}"
    else:
        backend, device = "gloo", "cpu"
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return World(rank=rank, size=size, local_rank=local_rank, device=device, backend=backend)
