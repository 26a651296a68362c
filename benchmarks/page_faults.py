"""Page faults and step times of training steps, with and without minicnn's memory handler.

    python benchmarks/page_faults.py [--nets lenet5,dwsep,convnet] [--batch 64] [--steps 200]
                                     [--rounds 3]

Each network trains in a fresh process per round and way: as minicnn runs (its caching NumPy
memory handler inside its calls, minicnn/allocator.py), and with
``minicnn.allocator.set_enabled(False)``, where every array comes from NumPy's default handler
as before the handler existed. A fresh process each time, because glibc's malloc adapts its
mmap and trim thresholds to what the process freed before (and a process holding the
handler's kept blocks would spare the other way's heap its trims). The two ways alternate, in
turn first, over the rounds, so both see a shared host's load alike. Per way: minor page
faults a step (getrusage's ru_minflt over the timed steps, which other processes cannot
disturb), and over all timed steps of all rounds the median, 95th percentile and maximum step
time with their ratios to the median, and each round's median. Prints a markdown table (the
date, commit and load average first).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

WAYS = ("handler", "default")
LABEL = {"handler": "minicnn's handler", "default": "NumPy's default"}


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=os.path.dirname(os.path.abspath(__file__))
                              ).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def child(net, way, batch, steps, warmup):
    """Train ``net`` for warmup + steps steps in this process; print faults and step times."""
    import numpy as np

    import minicnn
    from minicnn import allocator
    from minicnn.architectures import build

    allocator.set_enabled(way == "handler")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((batch, 1, 28, 28)).astype(np.float32) for _ in range(8)]
    ys = [rng.integers(0, 10, batch) for _ in range(8)]
    model = build(net, rng=np.random.default_rng(1))
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    times = []
    for i in range(warmup + steps):
        if i == warmup:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        loss.forward(model.forward(xs[i % 8], training=True), ys[i % 8])
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"faults": faults / steps, "times": times}))


def run(net, way, args):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", net, way,
                          "--batch", str(args.batch), "--steps", str(args.steps),
                          "--warmup", str(args.warmup)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"page_faults.py: the {net} process ({way}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="lenet5,dwsep,convnet")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)    # NET WAY: one process's run
    args = p.parse_args(argv)
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        p.error(f"--batch, --steps and --rounds must be positive, --warmup at least 0; got "
                f"{args.batch}, {args.steps}, {args.rounds}, {args.warmup}")
    if args.child:
        child(*args.child, args.batch, args.steps, args.warmup)
        return
    loads = [os.getloadavg()[0]]
    print(f"**{time.strftime('%Y-%m-%d %H:%M')}**, commit {commit()}, "
          f"`python benchmarks/page_faults.py {' '.join(argv)}`; {args.rounds} rounds of a fresh "
          f"process per network and way, {args.steps} timed steps each after {args.warmup}\n")
    print("| net | batch | allocation | faults a step | median ms | p95 ms | max ms | p95/median "
          "| max/median | median per round |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for net in args.nets.split(","):
        results = {way: [] for way in WAYS}
        for r in range(args.rounds):
            for way in (WAYS if r % 2 == 0 else WAYS[::-1]):
                results[way].append(run(net, way, args))
        for way in WAYS:
            ms = sorted(t for res in results[way] for t in res["times"])
            med, p95 = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]
            faults = statistics.mean(res["faults"] for res in results[way])
            rounds = " / ".join(f"{statistics.median(res['times']):.1f}" for res in results[way])
            print(f"| {net} | {args.batch} | {LABEL[way]} | {faults:.1f} | {med:.2f} | {p95:.2f} | "
                  f"{ms[-1]:.2f} | {p95 / med:.2f} | {ms[-1] / med:.2f} | {rounds} |", flush=True)
        loads.append(os.getloadavg()[0])
    print(f"\nload average (1 min) of the host: {' / '.join(f'{v:.1f}' for v in loads)} "
          f"(at the start, then after each network)")


if __name__ == "__main__":
    main()
