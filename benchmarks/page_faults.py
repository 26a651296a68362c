"""Page faults and step times of training steps, with and without minicnn's memory handler.

    python benchmarks/page_faults.py [--nets lenet5,dwsep,convnet] [--batch 64] [--steps 200]

In a fresh process per network (glibc's malloc adapts its thresholds to what a process
freed before), two copies of the network (the same weights) train step by step in turn:
one as minicnn runs (its caching NumPy memory handler inside its calls, minicnn/allocator.py),
one with ``minicnn.allocator.set_enabled(False)``, where every array comes from NumPy's default
handler, as before the handler existed. Taking turns, both copies see the same load of a shared
host. Per copy: minor page faults a step (getrusage's ru_minflt around each step, which other
processes cannot disturb), and the median, 95th percentile and maximum step time with their
ratios to the median. Prints a markdown table (the date, commit and load average first).
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import minicnn
from minicnn import allocator
from minicnn.architectures import build

MODES = ("handler", "default")


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__))
                              ).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def trainer(net, seed):
    model = build(net, rng=np.random.default_rng(seed))
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step(x, y):
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()

    return step


def measure(net, batch, steps, warmup):
    """{mode: (faults a step, sorted step times in ms)} for one network."""
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, 1, 28, 28)).astype(np.float32) for _ in range(8)]
    ys = [rng.integers(0, 10, batch) for _ in range(8)]
    steppers = {mode: trainer(net, 1) for mode in MODES}
    times = {mode: [] for mode in MODES}
    faults = dict.fromkeys(MODES, 0)
    try:
        for i in range(warmup + steps):
            for mode in (MODES if i % 2 else MODES[::-1]):
                allocator.set_enabled(mode == "handler")
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                steppers[mode](xs[i % 8], ys[i % 8])
                t = time.perf_counter() - t0
                if i >= warmup:
                    times[mode].append(t * 1e3)
                    faults[mode] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    finally:
        allocator.set_enabled(True)
    return {mode: (faults[mode] / steps, sorted(times[mode])) for mode in MODES}


def rows(net, batch, steps, warmup):
    """The table rows of one network (run in a process of its own)."""
    for mode, (faults, ms) in measure(net, batch, steps, warmup).items():
        med, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
        what = "minicnn's handler" if mode == "handler" else "NumPy's default"
        print(f"| {net} | {batch} | {what} | {faults:.1f} | {med:.2f} | {p95:.2f} | "
              f"{ms[-1]:.2f} | {p95 / med:.2f} | {ms[-1] / med:.2f} |", flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="lenet5,dwsep,convnet")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--one", help=argparse.SUPPRESS)     # a child: this network's rows only
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        p.error(f"--batch and --steps must be positive, --warmup at least 0; got {args.batch}, "
                f"{args.steps}, {args.warmup}")
    if args.one:
        rows(args.one, args.batch, args.steps, args.warmup)
        return
    print(f"**{time.strftime('%Y-%m-%d %H:%M')}**, commit {commit()}, "
          f"`python benchmarks/page_faults.py {' '.join(argv)}`, {minicnn.get_num_threads()} "
          f"threads, load average (1 min) {os.getloadavg()[0]:.1f} at the start\n")
    print("| net | batch | allocation | faults a step | median ms | p95 ms | max ms | p95/median "
          "| max/median |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for net in args.nets.split(","):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--one", net, "--batch",
                        str(args.batch), "--steps", str(args.steps), "--warmup",
                        str(args.warmup)], check=True)
    print(f"\nload average (1 min) {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
