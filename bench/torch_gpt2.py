"""The GPT training step of bench_gpt2_cuda in PyTorch on a CUDA GPU.

Same architecture as tyr_gpt with tyr_gpt_config_gpt2: learned positions,
pre-LayerNorm with biases, fused qkv with bias, causal attention through
F.scaled_dot_product_attention (PyTorch's own backend choice: cuDNN's fused
attention on Hopper with PyTorch 2.11, bench/torch_sdpa.py), GELU MLP (tanh or
exact), tied head;
AdamW (fused) with weight decay on matrices, clipping at 1.0, random tokens.
Runs up to three modes and prints one line per mode:

  torch_gpt2 <preset> <mode> tok/s <value> ms/step <value> peak_gb <value>

with mode fp32-eager (TF32 off, as Tyr), bf16-eager (autocast) and
bf16-compile (autocast + torch.compile; skipped with --no-compile);
--modes picks some.

Under torchrun (WORLD_SIZE set) every process takes GPU LOCAL_RANK and the
model is wrapped in DistributedDataParallel over NCCL: --batch rows per GPU,
tok/s of all the ranks together, peak_gb the largest over them, mode
names with '-ddp' (and '-zero1' with --zero1: ZeroRedundancyOptimizer, the
AdamW moments sharded over the ranks), printed by rank 0:

  torchrun --nproc_per_node 8 bench/torch_gpt2.py --modes bf16-compile"""
import argparse
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, act):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.H, self.act = H, act

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch 1.13 (Debian's, CPU runs): the same attention written out
            att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
            y = att.masked_fill(~mask, float("-inf")).softmax(-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate=self.act))


class GPT(nn.Module):
    def __init__(self, V, T, L, H, C, act):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, act) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def run(a, mode):
    torch.manual_seed(0)
    dev = a.device
    cuda = dev == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "0"))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    act = "tanh" if a.act == "gelu_tanh" else "none"
    m = GPT(a.vocab, a.block, a.layers, a.heads, a.embd, act).to(dev)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    other = [p for p in m.parameters() if p.dim() < 2]
    fused = {"fused": True} if cuda else {}  # PyTorch 1.13 has no fused AdamW
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}]
    if world and a.zero1:
        from torch.distributed.optim import ZeroRedundancyOptimizer
        opt = ZeroRedundancyOptimizer(decay, torch.optim.AdamW, lr=6e-4, betas=(0.9, 0.95),
                                      weight_decay=0.1, **fused)
        opt.add_param_group({"params": other, "weight_decay": 0.0})
    else:
        opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), **fused)
    x = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)
    y = torch.randint(0, a.vocab, (a.batch, a.block), device=dev)
    bf16 = mode.startswith("bf16")
    fwd = m
    if world:
        ids = [torch.cuda.current_device()] if cuda else None
        fwd = torch.nn.parallel.DistributedDataParallel(m, device_ids=ids)
    fwd = torch.compile(fwd) if mode.endswith("compile") else fwd

    def step():
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=bf16):
            loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    best = float("inf")
    for _ in range(a.repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        sync()
        best = min(best, (time.perf_counter() - t0) / a.steps)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 1e9
    else:  # the process's peak resident memory
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    ntok = a.batch * a.block
    if world:  # the slowest rank's time, the largest peak
        import torch.distributed as dist
        t = torch.tensor([best, peak], device=dev, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        best, peak = t.tolist()
        ntok *= world
        mode += "-ddp" + ("-zero1" if a.zero1 else "")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"torch_gpt2 {a.preset} {mode} tok/s {ntok / best:.1f} ms/step {best * 1e3:.2f} "
              f"peak_gb {peak:.2f}" + (f" ranks {world}" if world else ""), flush=True)
    del m, opt, fwd
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="gpt2_124m")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--embd", type=int, default=768)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=50304)
    ap.add_argument("--act", default="gelu_tanh", choices=["gelu", "gelu_tanh"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                    help="cpu: fp32-eager only, gloo under torchrun, peak_gb the peak RSS")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of --steps (the best)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per process (0: torch's)")
    ap.add_argument("--modes", help="comma-separated: fp32-eager, bf16-eager, bf16-compile")
    ap.add_argument("--zero1", action="store_true",
                    help="under torchrun: ZeroRedundancyOptimizer (sharded AdamW moments)")
    ap.add_argument("--np", type=int, default=0,
                    help="spawn this many processes (DDP over gloo or NCCL) without torchrun")
    ap.add_argument("--port", type=int, default=29621)
    a = ap.parse_args()
    if a.modes:
        bad = [m for m in a.modes.split(",") if m not in ("fp32-eager", "bf16-eager", "bf16-compile")]
        if bad:
            ap.error(f"--modes {bad[0]}: not fp32-eager, bf16-eager or bf16-compile")
    if a.np > 0 and "WORLD_SIZE" not in os.environ:
        import torch.multiprocessing as mp
        mp.spawn(spawned, args=(a,), nprocs=a.np, join=True)
        return
    run_all(a)


def spawned(rank, a):
    """One of --np's processes: torchrun's environment, then the runs."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(a.np),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(a.port))
    run_all(a)


def run_all(a):
    if a.device == "cuda" and not torch.cuda.is_available():
        print("torch_gpt2: no CUDA device visible to PyTorch", flush=True)
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    modes = ["fp32-eager", "bf16-eager"] + ([] if a.no_compile else ["bf16-compile"])
    if a.modes:
        modes = a.modes.split(",")
    if a.device == "cpu":
        modes = ["fp32-eager"]
    if "WORLD_SIZE" in os.environ:
        import torch.distributed as dist
        if a.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if a.device == "cuda" else "gloo")
    for mode in modes:
        try:
            run(a, mode)
        except Exception as e:  # report and go on with the next mode
            print(f"torch_gpt2: {mode}: {type(e).__name__}: {str(e)[:200]}", flush=True)
    if "WORLD_SIZE" in os.environ:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
