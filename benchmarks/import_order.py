"""Does import order change anyone's speed? Each case in a fresh process, cases alternated.

    python benchmarks/import_order.py                       # lenet5 and dwsep, batch 64
    python benchmarks/import_order.py --nets convnet --rounds 5 --seconds 3

minicnn's training step is timed with NumPy, PyTorch or minicnn imported first; PyTorch's
with and without ``import minicnn`` in the same process (minicnn imported, not used). Each
process times steps for ``--seconds`` after a warm-up; the table shows, per case, the median
step over all rounds with the min-max of the per-round medians, and each case against the
first case of its framework. minicnn promises both spreads stay within noise: importing it
changes no environment variable, allocator setting or other library's thread pool.
"""
import argparse
import json
import statistics
import subprocess
import sys

CASES = {
    "minicnn, numpy first": ("minicnn", ["numpy", "minicnn"]),
    "minicnn, torch first": ("minicnn", ["torch", "numpy", "minicnn"]),
    "minicnn, minicnn first": ("minicnn", ["minicnn", "numpy"]),
    "torch alone": ("torch", ["numpy", "torch"]),
    "torch, minicnn imported": ("torch", ["numpy", "minicnn", "torch"]),
}

CHILD = r"""
import json, sys, time
framework, modules, net, batch, seconds = json.loads(sys.argv[1])
for name in modules:
    __import__(name)
import numpy as np
rng = np.random.default_rng(0)
xs = [rng.standard_normal((batch, 1, 28, 28)).astype(np.float32) for _ in range(8)]
ys = [rng.integers(0, 10, batch) for _ in range(8)]
if framework == "minicnn":
    import minicnn
    from minicnn.architectures import build
    model = build(net, rng=rng)
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step(i):
        loss.forward(model.forward(xs[i % 8], training=True), ys[i % 8])
        model.backward(loss.backward(), input_grad=False)
        opt.step()
else:
    import torch
    from torch import nn
    R = nn.ReLU
    nets = {
        "lenet5": lambda: nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), R(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), R(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), R(), nn.Linear(120, 84), R(),
            nn.Linear(84, 10)),
        "convnet": lambda: nn.Sequential(
            nn.Conv2d(1, 32, 3), R(), nn.Conv2d(32, 64, 3), R(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(9216, 128), R(), nn.Linear(128, 10)),
        "dwsep": lambda: nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, padding_mode="reflect"), R(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 32, 1), R(),
            nn.Conv2d(32, 32, 3, padding=1, groups=32, padding_mode="reflect"),
            nn.Conv2d(32, 64, 1), R(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(3136, 64), R(),
            nn.Linear(64, 10)),
    }
    model = nets[net]()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    txs = [torch.from_numpy(x) for x in xs]
    tys = [torch.from_numpy(y) for y in ys]

    def step(i):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(txs[i % 8]), tys[i % 8]).backward()
        opt.step()
for i in range(10):
    step(i)
times, end, i = [], time.perf_counter() + seconds, 0
while time.perf_counter() < end or len(times) < 10:
    t0 = time.perf_counter()
    step(i)
    times.append(time.perf_counter() - t0)
    i += 1
print(json.dumps(times))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="lenet5,dwsep")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0, help="timing per process (default 2)")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
        cases = list(CASES)
    except ImportError:
        print("PyTorch is not installed: only minicnn's import orders are timed")
        cases = [c for c in CASES if CASES[c][0] == "minicnn" and "torch" not in CASES[c][1]]
    for net in args.nets.split(","):
        medians = {c: [] for c in cases}
        steps = {c: [] for c in cases}
        for r in range(args.rounds):
            order = cases[r % len(cases):] + cases[:r % len(cases)]      # rotate each round
            for case in order:
                framework, modules = CASES[case]
                out = subprocess.run(
                    [sys.executable, "-c", CHILD,
                     json.dumps([framework, modules, net, args.batch_size, args.seconds])],
                    capture_output=True, text=True, check=True).stdout
                times = [t * 1e3 for t in json.loads(out)]
                steps[case] += times
                medians[case].append(statistics.median(times))
        print(f"\n{net}, batch {args.batch_size}, training step, {args.rounds} rounds "
              f"(ms: median of all steps, min-max of the round medians)")
        base = {}
        for case in cases:
            framework = CASES[case][0]
            med = statistics.median(steps[case])
            base.setdefault(framework, med)
            print(f"  {case:26} {med:8.2f} ({min(medians[case]):.2f}-{max(medians[case]):.2f})"
                  f"  {med / base[framework]:5.2f}x the first {framework} case")


if __name__ == "__main__":
    main()
