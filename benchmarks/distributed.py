"""Data-parallel training on this machine: 1 process x 2 threads against 2 processes x 1
thread, and what the gradients' allreduce costs per step; then, on paper, the scaling to 4,
16 and 64 machines.

    python benchmarks/distributed.py [--rounds 3] [--nets lenet5,convnet,dwsep]
        [--networks 10:25,1:50]

Each row trains a network of minicnn.architectures on random uint8 images, global batch 64
(32 per rank with two ranks), through Trainer.fit / DistributedTrainer.fit, in fresh
processes: ``python distributed.py --child one`` with MINICNN_NUM_THREADS=2, then
``mpiexec -n 2 python distributed.py --child two`` with MINICNN_NUM_THREADS=1 each; the order
alternates over rounds. A step's time is the interval between the ends of consecutive
optimizer steps (so it includes the data's gather and normalisation), after warm-up steps;
images/s is 64 over the median step. With two ranks the child also reports the time spent
inside the allreduce during training (it includes waiting for the slower rank) and, after
training, the allreduce of the same buffer alone, started right after a barrier (median of
50): the communication itself. Needs mpi4py and mpiexec (pip install 'minicnn[mpi]').

The paper model takes each network's gradient buffer (float64, as DistributedTrainer sends
it), a ring allreduce's time 2 (p - 1) / p * bytes / bandwidth + 2 (p - 1) * latency for each
``--networks`` entry (Gbit/s:microseconds), and a machine like this one computing a batch-64
step (weak scaling: every machine keeps 64 images a step) in the time compare.py measured with
nothing else running (QUIET_STEP_MS; this run's own times on a shared host would flatter the
scaling). Nothing overlaps communication with the backward pass, so a step takes compute +
allreduce.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH = 64
#: timed steps per network (about a second of training each), after WARMUP steps
STEPS = {"lenet5": 200, "dwsep": 60, "convnet": 40}
WARMUP = 5
#: the batch-64 training step (ms, 2 threads) of benchmarks/README.md's "Latest run" of
#: compare.py on this machine with nothing else running (2026-12-03)
QUIET_STEP_MS = {"lenet5": 3.25, "convnet": 30.6, "dwsep": 14.0}


def child(mode, net, steps):
    import numpy as np    # first, as a user's script does
    import minicnn
    from minicnn.architectures import build
    from minicnn.data import normalize

    rng = np.random.default_rng(0)
    n = (steps + WARMUP) * BATCH
    x, y = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)
    minicnn.seed(0)
    model = build(net)
    sgd = minicnn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    if mode == "one":
        trainer = minicnn.Trainer(model, minicnn.SoftmaxCrossEntropy(), sgd)
    else:
        from minicnn.distributed import DistributedTrainer

        trainer = DistributedTrainer(model, minicnn.SoftmaxCrossEntropy(), sgd)
    ends, comm = [], []
    real_step = trainer._step

    def timed_step(*args):
        out = real_step(*args)
        ends.append(time.perf_counter())
        return out

    trainer._step = timed_step
    if mode == "two":
        real_allreduce = trainer.comm.allreduce_sum

        def timed_allreduce(buf, what):
            start = time.perf_counter()
            real_allreduce(buf, what)
            comm.append(time.perf_counter() - start)

        trainer.comm.allreduce_sum = timed_allreduce
    trainer.fit(x, y, epochs=1, batch_size=BATCH, seed=0, verbose=0, transform=normalize)
    step = statistics.median(b - a for a, b in zip(ends[WARMUP:], ends[WARMUP + 1:]))
    result = {"net": net, "mode": mode, "threads": minicnn.get_num_threads(),
              "images_per_second": BATCH / step, "step_ms": 1e3 * step}
    if mode == "two":
        result["in_allreduce_ms"] = 1e3 * statistics.median(comm[WARMUP:])
        result["allreduce_alone_ms"] = 1e3 * allreduce_alone(trainer)
        result["buffer_bytes"] = trainer.gradients.nbytes
        if trainer.rank != 0:
            return
    print("RESULT " + json.dumps(result), flush=True)


def allreduce_alone(trainer, repeats=50):
    """The median time of the gradient buffer's allreduce, each started after a barrier."""
    buf = trainer.gradients.flat.copy()
    times = []
    for _ in range(repeats):
        trainer.comm.barrier("the benchmark's barrier")
        start = time.perf_counter()
        trainer.comm.allreduce_sum(buf, "the benchmark's allreduce")
        times.append(time.perf_counter() - start)
        buf[:] = trainer.gradients.flat
    return statistics.median(times)


def run_child(mode, net):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, "--net", net,
            "--steps", str(STEPS[net])]
    if mode == "two":
        if mpiexec is None:
            raise SystemExit("benchmarks/distributed.py: no mpiexec; pip install 'minicnn[mpi]'")
        argv = [mpiexec, "-n", "2", *argv]
    env = dict(os.environ, MINICNN_NUM_THREADS="2" if mode == "one" else "1")
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=HERE, timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def ring_allreduce_seconds(nbytes, machines, bandwidth, latency):
    p = machines
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * latency


def report(results, args):
    from statistics import median

    print(f"\n{'net':8} {'1 proc x 2 thr':>15} {'2 proc x 1 thr':>15} {'ratio':>6} "
          f"{'in allreduce':>13} {'allreduce alone':>16}  (img/s, ms per step; median of "
          f"{args.rounds} rounds, min-max)")
    for net in args.nets:
        one = [r for r in results if r["net"] == net and r["mode"] == "one"]
        two = [r for r in results if r["net"] == net and r["mode"] == "two"]
        a = [r["images_per_second"] for r in one]
        b = [r["images_per_second"] for r in two]
        inside = [r["in_allreduce_ms"] for r in two]
        alone = [r["allreduce_alone_ms"] for r in two]
        print(f"{net:8} {median(a):7.0f} ({min(a):.0f}-{max(a):.0f}) {median(b):6.0f} "
              f"({min(b):.0f}-{max(b):.0f}) {median(b) / median(a):6.2f} "
              f"{median(inside):10.3f} ms {median(alone):12.3f} ms")
    quiet = {n: QUIET_STEP_MS[n] / 1e3 for n in args.nets}
    for gbit, micros in args.networks:
        paper(args.nets, gbit, micros, quiet)


def paper(nets, gbit, micros, compute):
    from minicnn.architectures import build

    bandwidth, latency = gbit * 1e9 / 8, micros * 1e-6
    print(f"\nOn paper, {gbit:g} Gbit/s and {micros:g} us latency, ring allreduce of the float64 "
          "gradient buffer; compute per step: compare.py's, quiet machine")
    print("| net | params | buffer | compute | " +
          " | ".join(f"{p} machines: allreduce, speed-up (efficiency)" for p in (4, 16, 64)) + " |")
    print("| --- " * 7 + "|")
    for net in nets:
        params = sum(p.value.size for p in build(net).parameters())
        nbytes = 8 * (params + 4)
        cells = []
        for p in (4, 16, 64):
            comm = ring_allreduce_seconds(nbytes, p, bandwidth, latency)
            speedup = p * compute[net] / (compute[net] + comm)
            cells.append(f"{1e3 * comm:.2f} ms, x{speedup:.1f} ({100 * speedup / p:.0f}%)")
        print(f"| {net} | {params:,} | {nbytes / 1e6:.2f} MB | {1e3 * compute[net]:.2f} ms | " +
              " | ".join(cells) + " |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", choices=["one", "two"], help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nets", default="lenet5,convnet,dwsep")
    p.add_argument("--networks", default="10:25,1:50",
                   help="links for the paper model, Gbit/s:latency in microseconds, comma-separated")
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.net, args.steps)
    args.nets = args.nets.split(",")
    args.networks = [tuple(float(v) for v in link.split(":")) for link in args.networks.split(",")]
    unknown = [n for n in args.nets if n not in STEPS]
    if unknown:
        raise SystemExit(f"benchmarks/distributed.py: unknown --nets {unknown}; known {sorted(STEPS)}")
    results = []
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        for net in args.nets:
            for mode in (("one", "two") if r % 2 == 0 else ("two", "one")):
                results.append(run_child(mode, net))
                print(f"round {r + 1} (load {load:.2f}) {net:8} {mode}: "
                      f"{results[-1]['images_per_second']:6.0f} img/s", flush=True)
    report(results, args)


if __name__ == "__main__":
    main()
