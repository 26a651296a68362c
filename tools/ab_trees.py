"""Two builds of minicnn side by side: whole training steps, alternating processes.

    python tools/ab_trees.py OLD_TREE [NEW_TREE] [--arch lenet5] [--rounds 4]

OLD_TREE and NEW_TREE are source trees with their kernels built in place (for example a
``git worktree`` at the commit before a change, after ``python setup.py build_ext
--inplace``); NEW_TREE defaults to this repository. Each round runs one process per tree,
old then new, each importing NumPy and then minicnn from its tree (PYTHONPATH), as a
user's script does, and reporting the median training step alone and the median step
right after a step of the plain-NumPy peer (benchmarks/numpy_reference.py; as
benchmarks/compare.py interleaves frameworks, the other's step leaves cold caches and idle
cores behind). A change whose effect is smaller than the host's swings between minutes is
visible here when it is not in two separate compare.py runs.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BENCHMARKS = os.path.join(REPO, "benchmarks")     # numpy_reference.py, the plain-NumPy peer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="source tree of the old build")
    p.add_argument("new", nargs="?", default=REPO,
                   help="source tree of the new build (default: this repository)")
    p.add_argument("--arch", default="lenet5")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps", type=int, default=None, help="timed steps per median (default: 40 "
                   "for lenet5, 8 otherwise)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 40 if args.arch == "lenet5" else 8
    return args


def child(args):
    """Time this process's minicnn: (median step alone, median step after a NumPy step)."""
    import time

    import numpy as np
    import minicnn
    from minicnn.architectures import build

    sys.path.insert(0, BENCHMARKS)
    import numpy_reference

    minicnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    model = build(args.arch, rng=rng)
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    peer = numpy_reference.from_minicnn(model)
    x = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)

    def step():
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()

    for _ in range(10):
        step()
    alone, after = [], []
    for _ in range(3):
        for between, out in ((None, alone), (lambda: peer.train_step(x, y, lr=1e-3), after)):
            times = []
            for _ in range(args.steps):
                if between:
                    between()
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            out.append(statistics.median(times) * 1e3)
    print(f"{statistics.median(alone):.4f} {statistics.median(after):.4f} {minicnn.__file__}")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    for var in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    results = {"old": ([], []), "new": ([], [])}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--arch", args.arch,
           "--steps", str(args.steps), "--threads", str(args.threads), "unused"]
    print(f"{args.arch}, batch 64, {args.threads} threads: median training step (ms), alone / "
          f"after a NumPy step")
    for r in range(args.rounds):
        for name, tree in (("old", args.old), ("new", args.new)):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                                 cwd="/").stdout.split()
            alone, after, where = float(out[0]), float(out[1]), out[2]
            if not where.startswith(os.path.abspath(tree)):
                sys.exit(f"ab_trees: {name} imported minicnn from {where}, not from {tree} "
                         f"(build it in place there)")
            results[name][0].append(alone)
            results[name][1].append(after)
            print(f"round {r + 1} {name}: {alone:7.3f} / {after:7.3f}", flush=True)
    for name, (alone, after) in results.items():
        print(f"{name}: alone {min(alone):.3f}-{max(alone):.3f} (median "
              f"{statistics.median(alone):.3f}), after NumPy {min(after):.3f}-{max(after):.3f} "
              f"(median {statistics.median(after):.3f})")
    print(f"new / old, medians: alone {statistics.median(results['new'][0]) / statistics.median(results['old'][0]):.3f}, "
          f"after NumPy {statistics.median(results['new'][1]) / statistics.median(results['old'][1]):.3f}")


if __name__ == "__main__":
    main()
