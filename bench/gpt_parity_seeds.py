"""Loss-curve parity of tyr_gpt and PyTorch over several seeds.

One `gpt_parity --seed S --out DIR_S` run per seed leaves each mode's losses
(DIR_S/losses_<mode>.txt for Tyr, DIR_S/torch_losses_<torch mode>.txt for
PyTorch).  A single pair of 300-step curves drifts apart by chaos, PyTorch's
own runs included, by more than the issue's bound; over several seeds
(different initial weights, the same batches) the level of each mode's
curve averages out.  For each mode this prints, per seed, the mean loss over
the last 100 steps (or the last third) of Tyr and of PyTorch, then the mean
over the seeds of the difference, its standard error, and the spread of
PyTorch's own level across the seeds; PASS when every mode's mean
difference is within the bound (default 0.02).

  python3 bench/gpt_parity_seeds.py DIR_0 DIR_1 ... [--bound 0.02]"""
import argparse
import math
import os
import sys

TORCH_MODE = {"f32": "fp32", "tf32": "tf32", "bf16-matmul": "bf16in", "bf16": "bf16"}


def read(path):
    with open(path) as f:
        return [float(x) for x in f if x.strip()]


def tail_mean(xs):
    k = 100 if len(xs) >= 300 else max(1, len(xs) // 3)
    return sum(xs[-k:]) / k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--bound", type=float, default=0.02)
    a = ap.parse_args()
    ok, compared = True, 0
    print(f"{'mode':12} {'seeds':>5} {'tyr (per seed)':>40} {'torch (per seed)':>40} "
          f"{'mean diff':>10} {'std err':>8} {'torch spread':>12}")
    for mode, tm in TORCH_MODE.items():
        ty, to = [], []
        for d in a.dirs:
            p, q = os.path.join(d, f"losses_{mode}.txt"), os.path.join(d, f"torch_losses_{tm}.txt")
            if os.path.exists(p) and os.path.exists(q):
                ty.append(tail_mean(read(p)))
                to.append(tail_mean(read(q)))
            elif os.path.exists(p) or os.path.exists(q):
                # one side's curve without the other's: that run did not finish
                print(f"{mode:12} {d}: {os.path.basename(q if os.path.exists(p) else p)} is missing")
                ok = False
        n = len(ty)
        if n == 0:
            continue
        compared += 1
        diffs = [x - y for x, y in zip(ty, to)]
        mean = sum(diffs) / n
        se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else float("nan")
        spread = max(to) - min(to)
        good = abs(mean) <= a.bound
        ok &= good
        print(f"{mode:12} {n:5d} {' '.join(f'{x:.4f}' for x in ty):>40} "
              f"{' '.join(f'{x:.4f}' for x in to):>40} {mean:+10.4f} {se:8.4f} {spread:12.4f}"
              f"{'' if good else '  over the bound'}")
    if compared == 0:
        print("gpt_parity_seeds: no mode has both a Tyr and a PyTorch curve in " + " ".join(a.dirs))
        ok = False
    print("gpt_parity_seeds: PASS" if ok else "gpt_parity_seeds: FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
