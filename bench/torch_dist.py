"""torch.distributed twin of bench_dist, for bench/bench_dist.sh and
bench/multigpu.sh.

Spawns N processes on this machine (or runs as one of torchrun's): all-reduce,
reduce-scatter and all-gather (f32 sum) time and bus bandwidth by message size
(the larger buffer's bytes; busbw as nccl-tests: 2 (N-1)/N for all-reduce,
(N-1)/N for the others), then, unless --no-step, a data-parallel step
(DistributedDataParallel, 0.5 MB buckets) of the same GPT as bench_dist
(torch_gpt.GPT, 4 x 128, block 64, global batch 12) against the step without
communication.  Prints lines in bench_dist's format with the prefix 'torch'.

  torch_dist.py --np 2                                   gloo, CPU tensors
  torchrun --nproc_per_node 8 bench/torch_dist.py --backend nccl --device cuda \
      --collectives allreduce,reducescatter,allgather --no-step"""
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
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def sync(a):
    if a.device == "cuda":
        torch.cuda.synchronize()


def sweep(name, a, rank, N):
    kb = 4.0
    dev = a.device if a.device == "cpu" else f"cuda:{torch.cuda.current_device()}"
    while kb <= a.max_mb * 1024 + 0.5:
        n = int(kb * 1024 / 4) // N  # elements of one rank's part
        kb *= 4
        if n < 1:
            continue
        whole = torch.zeros(n * N, device=dev)
        part = torch.zeros(n, device=dev)
        if name == "allreduce":
            def fn():
                dist.all_reduce(whole)
        elif name == "reducescatter":
            if a.backend == "gloo":  # PyTorch's gloo group has no reduce-scatter
                if rank == 0:
                    print("torch reducescatter: not in torch.distributed's gloo backend", flush=True)
                return

            def fn():
                dist.reduce_scatter_tensor(part, whole)
        elif a.backend == "gloo":  # no all_gather_into_tensor in gloo: views of whole
            views = list(whole.chunk(N))

            def fn():
                dist.all_gather(views, part)
        else:
            def fn():
                dist.all_gather_into_tensor(whole, part)

        def run():
            fn()
            sync(a)
        iters = 200 if kb <= 256 else 50 if kb <= 4096 else 10  # kb is already the next size
        timed(run, 3)
        s = timed(run, iters)
        nbytes = 4.0 * n * N
        f = (2.0 if name == "allreduce" else 1.0) * (N - 1) / N
        if rank == 0:
            print(f"torch {name} bytes {nbytes:.0f} time_us {s * 1e6:.1f} "
                  f"busbw_GBs {f * nbytes / s / 1e9:.3f}", flush=True)


def worker(rank, a):
    if "RANK" not in os.environ or a.spawned:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(a.port)
    torch.set_num_threads(a.threads)
    if a.device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    dist.init_process_group(a.backend, rank=rank, world_size=a.np)
    N = a.np
    for name in a.collectives.split(","):
        sweep(name, a, rank, N)
    if a.no_step:
        dist.destroy_process_group()
        return
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
    ap.add_argument("--np", type=int, default=2, help="processes to spawn (ignored under torchrun)")
    ap.add_argument("--max-mb", type=float, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--port", type=int, default=29611)
    ap.add_argument("--backend", default="gloo", choices=("gloo", "nccl"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--collectives", default="allreduce",
                    help="comma-separated: allreduce, reducescatter, allgather")
    ap.add_argument("--no-step", action="store_true", help="collectives only")
    a = ap.parse_args()
    for name in a.collectives.split(","):
        if name not in ("allreduce", "reducescatter", "allgather"):
            ap.error(f"--collectives {name}: not allreduce, reducescatter or allgather")
    if a.backend == "nccl" and a.device != "cuda":
        ap.error("--backend nccl needs --device cuda")
    if not a.no_step and a.device != "cpu":
        ap.error("the data-parallel step runs on the CPU only: add --no-step")
    a.spawned = "RANK" not in os.environ
    if not a.spawned:  # one of torchrun's processes
        a.np = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ["RANK"])
        if rank == 0:
            print(f"torch {torch.__version__}, {a.backend}, {a.np} processes (torchrun), "
                  f"{a.threads} threads each", flush=True)
        worker(rank, a)
        return
    print(f"torch {torch.__version__}, {a.backend}, {a.np} processes, {a.threads} threads each",
          flush=True)
    mp.spawn(worker, args=(a,), nprocs=a.np, join=True)


if __name__ == "__main__":
    main()
