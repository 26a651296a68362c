"""minicnn beside a plain-NumPy CNN and PyTorch, in one process, on the same networks.

    python benchmarks/compare.py                  # everything, 2 threads
    python benchmarks/compare.py --quick          # batch 64 only, shorter timing budget
    python benchmarks/compare.py --json out.json  # also write the rows for later comparison

For each network (lenet5, convnet, dwsep of minicnn.architectures), batch size and mode
(a training step: forward, softmax cross-entropy, backward, SGD with momentum and weight
decay; inference: forward only), every framework gets the same weights and the same
batch; their steps are interleaved (one of each, repeated) so a noisy machine slows them
alike. Per-operation timings cover each convolution, pooling and padding of those
networks at batch 64. Peak resident memory is measured in a fresh subprocess per
framework. Ratios are "times faster than the peer": peer median / minicnn median, so
above 1.0 minicnn wins. ``--threads`` (default 2) applies to minicnn, NumPy's BLAS and
PyTorch alike; it has to be set before NumPy loads, so this script sets it first.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

NETS = ("lenet5", "convnet", "dwsep")
PEERS = ("minicnn", "numpy", "torch")
LR = 1e-3


def peak_rss_kb():
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries the parent's
    peak across fork and exec into it, so a child of a big process would report the parent's."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every framework (default 2)")
    p.add_argument("--nets", default=",".join(NETS), help="comma-separated (default: all three)")
    p.add_argument("--batches", default="1,64,256", help="batch sizes (default 1,64,256)")
    p.add_argument("--budget", type=float, default=4.0,
                   help="seconds of timing per row, shared by the peers (default 4)")
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="batch 64 only, 1.5 s per row")
    p.add_argument("--no-numpy", action="store_true", help="skip the plain-NumPy reference")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--no-ops", action="store_true", help="skip the per-operation table")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    p.add_argument("--memory-steps", type=int, default=300,
                   help="training steps of each peak-memory run (default 300, batch 64)")
    p.add_argument("--json", metavar="PATH", help="write all rows as JSON")
    p.add_argument("--torch-first", action="store_true",
                   help="import torch before minicnn: the OpenMP runtime both share then keeps "
                        "torch's defaults (spinning threads) instead of minicnn's (sleeping)")
    p.add_argument("--child-memory", nargs=2, metavar=("PEER", "NET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.budget = "64", 1.5
    args.nets = [n for n in args.nets.split(",") if n]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    for n in args.nets:
        if n not in NETS:
            p.error(f"unknown network {n!r}; choose from {', '.join(NETS)}")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    return args


def set_thread_env(threads):
    """Every threading library reads these when it loads: set them before importing NumPy."""
    for var in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(threads)


# --- timing -------------------------------------------------------------------------

def interleaved(fns, budget, min_repeats, max_repeats, warmup=2):
    """Run each callable ``warmup`` times, then one of each in turn until the budget is spent.

    Returns {name: [seconds, ...]}, each list of the same length.
    """
    first = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            t0 = time.perf_counter()
            fn()
            first[name] = time.perf_counter() - t0
    per_round = sum(first.values()) or 1e-6
    repeats = int(min(max_repeats, max(min_repeats, budget / per_round)))
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def summarise(times):
    """{peer: {median, min, max, n}} in milliseconds, plus speed ratios against minicnn."""
    row = {}
    for name, ts in times.items():
        ms = [t * 1e3 for t in ts]
        row[name] = {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
                     "n": len(ms)}
    ours = row["minicnn"]["median_ms"]
    ratios = {peer: row[peer]["median_ms"] / ours for peer in row if peer != "minicnn"}
    return row, ratios


def fmt_cell(stats):
    if stats is None:
        return "-"
    return f"{stats['median_ms']:9.3f} ({stats['min_ms']:.2f}-{stats['max_ms']:.2f})"


# --- the three implementations of a training step and an inference -----------------

class Peers:
    """The same network, with the same weights, in each available framework."""

    def __init__(self, net, use_numpy, torch):
        import numpy as np

        import minicnn
        from minicnn.architectures import build

        self.np = np
        self.model = build(net, rng=np.random.default_rng(0))
        self.loss = minicnn.SoftmaxCrossEntropy()
        # a small step: hundreds of timed steps on one random batch must not diverge (NaN and
        # overflow would time a different computation)
        self.opt = minicnn.SGD(self.model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4)
        self.reference = None
        if use_numpy:
            import numpy_reference
            self.reference = numpy_reference.from_minicnn(self.model)
        self.torch = torch
        if torch is not None:
            import torch_peer
            self.twin = torch_peer.twin(self.model)
            self.topt = torch.optim.SGD(self.twin.parameters(), lr=LR, momentum=0.9,
                                        weight_decay=5e-4)

    def names(self):
        return [p for p, on in (("minicnn", True), ("numpy", self.reference is not None),
                                ("torch", self.torch is not None)) if on]

    def train_steps(self, x, y):
        """{peer: a callable doing one training step on (x, y) and returning the loss}."""
        model, loss, opt = self.model, self.loss, self.opt

        def ours():
            value = loss.forward(model.forward(x, training=True), y)
            model.backward(loss.backward(), input_grad=False)
            opt.step()
            return value

        steps = {"minicnn": ours}
        if self.reference is not None:
            steps["numpy"] = lambda: self.reference.train_step(x, y, lr=LR)
        if self.torch is not None:
            torch, twin, topt = self.torch, self.twin, self.topt
            xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(self.np.int64))

            def theirs():
                topt.zero_grad(set_to_none=True)
                value = torch.nn.functional.cross_entropy(twin(xt), yt)
                value.backward()
                topt.step()
                return value.item()

            steps["torch"] = theirs
        return steps

    def inferences(self, x):
        fns = {"minicnn": lambda: self.model.forward(x, training=False)}
        if self.reference is not None:
            fns["numpy"] = lambda: self.reference.forward(x)
        if self.torch is not None:
            torch, twin, xt = self.torch, self.twin, self.torch.from_numpy(x)

            def theirs():
                with torch.inference_mode():
                    return twin(xt)

            fns["torch"] = theirs
        return fns


def check_agreement(peers, x, y):
    """One training step of each peer from the same weights must give the same loss."""
    losses = {name: float(step()) for name, step in peers.train_steps(x, y).items()}
    ours = losses["minicnn"]
    for name, value in losses.items():
        if abs(value - ours) > 1e-4 * max(1.0, abs(ours)):
            raise SystemExit(f"{name} computes a different loss ({value!r}) than minicnn "
                             f"({ours!r}): the networks are not twins, the timings would be void")
    return losses


def network_rows(args, torch):
    import numpy as np

    rows = []
    for net in args.nets:
        peers = Peers(net, not args.no_numpy, torch)
        rng = np.random.default_rng(1)
        xcheck = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
        check_agreement(peers, xcheck, rng.integers(0, 10, 8))
        for batch in args.batches:
            x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
            y = rng.integers(0, 10, batch)
            for mode in ("train", "infer"):
                fns = peers.train_steps(x, y) if mode == "train" else peers.inferences(x)
                times = interleaved(fns, args.budget, args.min_repeats, args.max_repeats)
                stats, ratios = summarise(times)
                rows.append({"net": net, "batch": batch, "mode": mode, "stats": stats,
                             "ratios": ratios})
                print_network_row(rows[-1])
    return rows


def print_network_header():
    print(f"{'network':8} {'batch':>5} {'mode':5}  {'minicnn ms (min-max)':>24}  "
          f"{'numpy ms (min-max)':>24}  {'torch ms (min-max)':>24}  {'x numpy':>8} {'x torch':>8}")


def print_network_row(row):
    s, r = row["stats"], row["ratios"]
    ratio = lambda p: f"{r[p]:8.2f}" if p in r else f"{'-':>8}"  # noqa: E731
    print(f"{row['net']:8} {row['batch']:5d} {row['mode']:5}  {fmt_cell(s['minicnn']):>24}  "
          f"{fmt_cell(s.get('numpy')):>24}  {fmt_cell(s.get('torch')):>24}  "
          f"{ratio('numpy')} {ratio('torch')}", flush=True)


# --- per-operation timings ------------------------------------------------------------

def op_rows(args, torch, batch=64):
    """Forward and backward of every convolution and pooling layer of the networks, and
    the padding of every padded convolution, at the shapes they see in the networks."""
    import numpy as np

    import minicnn

    rows = []
    seen = set()
    for net in args.nets:
        peers = Peers(net, not args.no_numpy, torch)
        x = np.random.default_rng(2).standard_normal((batch, 1, 28, 28)).astype(np.float32)
        for i, layer in enumerate(peers.model):
            name = type(layer).__name__
            if name in ("Conv2D", "MaxPool2D", "AvgPool2D"):
                key = (repr(layer), x.shape)
                if key not in seen:
                    seen.add(key)
                    ref = peers.reference.layers[i] if peers.reference is not None else None
                    tmod = peers.twin[i] if torch is not None else None
                    rows += time_layer(args, torch, f"{net}[{i}] {layer!r}", layer, ref, tmod, x)
                    if name == "Conv2D" and layer.padding not in (((0, 0), (0, 0)), "valid"):
                        pads = minicnn.geometry.resolve_padding(layer.padding, x.shape[2:],
                                                                layer.kernel_size, layer.stride)
                        rows += time_pad(args, torch, net, i, pads, layer.padding_mode, x)
            x = layer.forward(x, training=False)
    return rows


def time_layer(args, torch, label, layer, ref, tmod, x):
    import numpy as np

    out = layer.forward(x, training=True)
    dout = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    fwd = {"minicnn": lambda: layer.forward(x, training=True)}
    bwd = {"minicnn": lambda: layer.backward(dout)}
    if ref is not None:
        fwd["numpy"] = lambda: ref.forward(x)
        ref.forward(x)
        bwd["numpy"] = lambda: ref.backward(dout)
    if tmod is not None:
        xt = torch.from_numpy(x).requires_grad_(True)
        dt = torch.from_numpy(dout)

        def tfwd():
            with torch.no_grad():
                return tmod(xt)

        ot = tmod(xt)
        inputs = [xt] + list(tmod.parameters())
        fwd["torch"] = tfwd
        bwd["torch"] = lambda: torch.autograd.grad(ot, inputs, dt, retain_graph=True)
    rows = []
    for what, fns in (("forward", fwd), ("backward", bwd)):
        if what == "backward":
            layer.forward(x, training=True)    # the cache backward reads
            if ref is not None:
                ref.forward(x)
        stats, ratios = summarise(interleaved(fns, args.budget / 2, args.min_repeats,
                                              args.max_repeats))
        rows.append({"op": f"{label} {what}", "input": list(x.shape), "stats": stats,
                     "ratios": ratios})
        print_op_row(rows[-1])
    return rows


def time_pad(args, torch, net, i, pads, mode, x):
    import numpy as np

    from minicnn import functional as F

    (t, b), (l, r) = pads
    np_mode = {"zeros": "constant", "reflect": "reflect"}.get(mode)
    fwd = {"minicnn": lambda: F.pad(x, pads, mode)}
    if np_mode is not None and not args.no_numpy:
        fwd["numpy"] = lambda: np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode=np_mode)
    if torch is not None and mode in ("zeros", "reflect"):
        xt = torch.from_numpy(x)
        tmode = "constant" if mode == "zeros" else "reflect"
        fwd["torch"] = lambda: torch.nn.functional.pad(xt, (l, r, t, b), mode=tmode)
    padded = F.pad(x, pads, mode)
    bwd = {"minicnn": lambda: F.pad_backward(padded, pads, mode, x.shape[2:])}
    if "numpy" in fwd:
        import numpy_reference
        bwd["numpy"] = lambda: numpy_reference._pad_adjoint(padded, pads, mode, x.shape[2:])
    if "torch" in fwd:
        xg = torch.from_numpy(x).requires_grad_(True)
        ot = torch.nn.functional.pad(xg, (l, r, t, b), mode=tmode)
        dt = torch.from_numpy(padded)
        bwd["torch"] = lambda: torch.autograd.grad(ot, [xg], dt, retain_graph=True)
    rows = []
    for what, fns in (("forward", fwd), ("backward", bwd)):
        stats, ratios = summarise(interleaved(fns, args.budget / 2, args.min_repeats,
                                              args.max_repeats))
        rows.append({"op": f"{net}[{i}] pad {pads} {mode} {what}", "input": list(x.shape),
                     "stats": stats, "ratios": ratios})
        print_op_row(rows[-1])
    return rows


def print_op_row(row):
    s, r = row["stats"], row["ratios"]
    ratio = lambda p: f"{r[p]:8.2f}" if p in r else f"{'-':>8}"  # noqa: E731
    print(f"{row['op'][:78]:78}  {fmt_cell(s['minicnn']):>24}  {fmt_cell(s.get('numpy')):>24}  "
          f"{fmt_cell(s.get('torch')):>24}  {ratio('numpy')} {ratio('torch')}", flush=True)


# --- peak memory of a training run, one fresh process per framework ---------------------

def child_memory(peer, net, steps, threads):
    """Train ``net`` for ``steps`` batches of 64 drawn from a uint8 data set the size of
    MNIST's (normalised batch by batch) and print the peak resident set in MB as JSON."""
    import numpy as np

    import minicnn
    from minicnn.data import normalize
    if peer == "torch":
        import torch
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 60000)
    peers = Peers(net, peer == "numpy", torch if peer == "torch" else None)
    start = time.perf_counter()
    for step in range(steps):
        idx = rng.integers(0, 60000, 64)
        x, y = normalize(images[idx]), labels[idx]
        peers.train_steps(x, y)[peer]()
    seconds = time.perf_counter() - start
    peak_kb = peak_rss_kb()
    print(json.dumps({"peer": peer, "net": net, "peak_mb": peak_kb / 1024, "steps": steps,
                      "seconds": seconds, "minicnn": minicnn.__version__}))


def memory_rows(args, peers_available):
    rows = []
    for peer in peers_available:
        cmd = [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
               "--memory-steps", str(args.memory_steps), "--child-memory", peer, "lenet5"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"memory run of {peer} failed:\n{done.stderr}", file=sys.stderr)
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"lenet5 training, {r['steps']} steps of 64, {r['peer']:8}: peak RSS "
              f"{r['peak_mb']:7.1f} MB ({r['seconds']:.1f} s)", flush=True)
    return rows


# --- main ---------------------------------------------------------------------------

def machine_info(np, torch):
    import minicnn
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "numpy": np.__version__,
            "minicnn": minicnn.__version__, "openmp": minicnn._config.openmp_enabled(),
            "torch": torch.__version__ if torch is not None else None,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
            "openblas_thread_timeout": minicnn._config.config()["openblas_thread_timeout"],
            "blas_core": minicnn._config.blas_core(), "malloc": minicnn._config.config()["malloc"]}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def main(argv=None):
    args = parse_args(argv)
    set_thread_env(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    torch = None
    if args.torch_first and not args.no_torch:
        import torch      # its OpenMP runtime loads with its own defaults (threads that spin)
    # minicnn before NumPy and torch: it sets OMP_WAIT_POLICY, GOMP_SPINCOUNT and OPENBLAS_THREAD_TIMEOUT,
    # which the OpenMP runtime and OpenBLAS read when they load (see minicnn/_config.py)
    import minicnn
    import numpy as np

    if args.child_memory:
        peer, net = args.child_memory
        return child_memory(peer, net, args.memory_steps, args.threads)
    minicnn.set_num_threads(args.threads)
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch is not installed: its columns are skipped (pip install torch)")
    info = machine_info(np, torch)
    print(" ".join(f"{k}={v}" for k, v in info.items()) + f" threads={args.threads}")
    print("times in ms: median (min-max); 'x peer' = peer median / minicnn median "
          "(above 1: minicnn faster)\n")
    print_network_header()
    result = {"machine": info, "threads": args.threads, "networks": network_rows(args, torch)}
    if not args.no_ops:
        print(f"\nper operation, batch 64 {'':46}{'minicnn':>24}  {'numpy':>24}  {'torch':>24}")
        result["ops"] = op_rows(args, torch)
    if not args.no_memory:
        print()
        available = (["minicnn"] + (["numpy"] if not args.no_numpy else [])
                     + (["torch"] if torch is not None else []))
        result["memory"] = memory_rows(args, available)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
