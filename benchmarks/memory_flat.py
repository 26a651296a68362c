"""Resident memory over 2,000 training steps: it must stay flat after warm-up.

    python benchmarks/memory_flat.py [--arch lenet5] [--steps 2000] [--batch-size 64]

Trains a network of minicnn.architectures on random uint8 images normalised batch by
batch (the data pipeline of ``minicnn train``) and samples the current resident set
size (/proc/self/statm, not the peak) every 100 steps. A leak in a kernel, in the
trainer or in a cache shows as a steady climb; the script prints the samples, the
growth after warm-up (step 500) and the slope in KB per step, and exits 1 when the
growth passes ``--tolerance-mb``.
"""
import argparse
import os
import sys


def rss_mb():
    """The current resident set size of this process in MB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="lenet5")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--tolerance-mb", type=float, default=4.0)
    args = p.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))
    import numpy as np    # first, as a user's script does
    import minicnn
    from minicnn.architectures import build
    from minicnn.data import normalize

    minicnn.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 10000)
    model = build(args.arch, rng=rng)
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    samples = []
    for step in range(1, args.steps + 1):
        idx = rng.integers(0, len(images), args.batch_size)
        loss.forward(model.forward(normalize(images[idx]), training=True), labels[idx])
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        if step % args.every == 0:
            samples.append((step, rss_mb()))
            print(f"step {step:5d}: RSS {samples[-1][1]:8.2f} MB", flush=True)
    after = [(s, m) for s, m in samples if s >= args.warmup]
    steps, mbs = np.array(after, dtype=float).T
    slope_kb = np.polyfit(steps, mbs, 1)[0] * 1024
    growth = mbs[-1] - mbs[0]
    print(f"{args.arch}, batch {args.batch_size}: RSS {mbs[0]:.2f} MB at step {int(steps[0])}, "
          f"{mbs[-1]:.2f} MB at step {int(steps[-1])} (growth {growth:+.2f} MB, "
          f"slope {slope_kb:+.3f} KB/step)")
    if growth > args.tolerance_mb:
        print(f"memory grew by more than {args.tolerance_mb} MB after warm-up", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
