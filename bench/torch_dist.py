"""torch.distributed (gloo) twin of bench_dist, for bench/bench_dist.sh.

Spawns N processes on this machine: all-reduce (f32 sum) time and bus
bandwidth by message size, then a data-parallel step (DistributedDataParallel,
0.5 MB buckets) of the same GPT as bench_dist (torch_gpt.GPT, 4 x 128, block
64, global batch 12) against the step without communication.  Prints lines in
bench_dist's format with the prefix 'torch'."""
import argparse
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_gpt import GPT  # noqa: E402


def timed(fn, iters):
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    t = torch.tensor([(time.perf_counter() - t0) / iters], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def worker(rank, a):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(a.port)
    torch.set_num_threads(a.threads)
    dist.init_process_group("gloo", rank=rank, world_size=a.np)
    N = a.np
    kb = 4.0
    while kb <= a.max_mb * 1024 + 0.5:
        t = torch.zeros(int(kb * 1024 / 4))
        iters = 200 if kb <= 64 else 50 if kb <= 1024 else 10
        timed(lambda: dist.all_reduce(t), 3)
        s = timed(lambda: dist.all_reduce(t), iters)
        nbytes = 4.0 * t.numel()
        if rank == 0:
            print(f"torch allreduce bytes {nbytes:.0f} time_us {s * 1e6:.1f} "
                  f"busbw_GBs {2.0 * (N - 1) / N * nbytes / s / 1e9:.3f}", flush=True)
        kb *= 4
    T, b = 64, 12 // N
    torch.manual_seed(1)
    m = GPT(65, T, 4, 4, 128)
    x = torch.randint(0, 65, (b, T))
    y = torch.randint(0, 65, (b, T))

    def make_step(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    local = make_step(m)
    timed(local, 3)
    t_local = timed(local, a.steps)
    # gloo cannot broadcast the bool causal masks (identical on every rank anyway)
    masks = [n for n, buf in m.named_buffers() if buf.dtype == torch.bool]
    torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(m, masks)
    ddp = torch.nn.parallel.DistributedDataParallel(m, bucket_cap_mb=0.5)
    step = make_step(ddp)
    timed(step, 3)
    t_over = timed(step, a.steps)
    if rank == 0:
        print(f"torch ddp ranks {N} batch_per_rank {b} step_ms_local {t_local * 1e3:.2f} "
              f"step_ms_overlap {t_over * 1e3:.2f} tok_s {12 * T / t_over:.0f}", flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--max-mb", type=float, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--port", type=int, default=29611)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, gloo, {a.np} processes, {a.threads} threads each", flush=True)
    mp.spawn(worker, args=(a,), nprocs=a.np, join=True)


if __name__ == "__main__":
    main()
