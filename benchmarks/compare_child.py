"""The processes compare.py starts: one framework each, imported as a user's script imports it.

    python benchmarks/compare_child.py '{"task": "rows", "framework": "torch", ...}'

The one argument is a JSON job; the answer is one JSON line on stdout. This module imports
only the standard library at the top; each framework's imports happen in its builder, NumPy
first (``import numpy as np`` then ``import minicnn``, as every user script starts), and a
PyTorch or plain-NumPy process never imports minicnn: their networks come from what the
"prepare" job wrote, the NumPy CNN's from the weights and plain description of net_spec.py,
PyTorch's as the module ``minicnn.interop.to_torch`` made, saved whole with ``torch.save``
(it holds torch.nn modules only, so loading it imports no minicnn). Nothing here sets an environment
variable or a thread count: each framework runs at its own defaults, or at what compare.py's
``--threads`` put in the environment of every child alike.

Tasks: prepare (build the networks, write DIR/NET.json and DIR/NET.npz, and DIR/NET.pt when
the job says "torch"), check (losses and
logits from the shared weights), rows (time one row; with "switches", also count each
step's involuntary context switches, for step_stalls.py), ops (time each layer of the networks
at batch 64), memory (peak RSS of a training run), same_process (all three interleaved in
this one process: the old way, an extra).
"""
import json
import os
import sys
import time

import compare_ops  # standard library only at its top, like this module

LR = 1e-3             # small: hundreds of steps on random batches must stay finite
CHECK_LR = 0.01       # large enough that the later losses of the check test the gradients
MOMENTUM, WEIGHT_DECAY = 0.9, 5e-4
DISTINCT_BATCHES = 8
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Peer:
    """One framework's network: ``train(x, y)`` does a step and returns the loss, ``infer(x)``
    a forward pass; ``convert(x, y)`` turns NumPy arrays into what both take (done untimed)."""

    def __init__(self, train, infer, convert, layer_ops=None):
        self.train, self.infer, self.convert, self.layer_ops = train, infer, convert, layer_ops


def load_net(job, net):
    import numpy as np

    with open(os.path.join(job["dir"], f"{net}.json")) as f:
        spec = json.load(f)
    with np.load(os.path.join(job["dir"], f"{net}.npz")) as z:
        weights = {k: z[k] for k in z.files}
    return spec, weights


def build_minicnn(job, net, lr):
    import numpy as np
    import minicnn
    from minicnn.architectures import build

    _, weights = load_net(job, net)
    model = build(net, rng=np.random.default_rng(0)).load_state_dict(weights)
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)

    def train(x, y):
        value = loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
        opt.step()
        return float(value)

    return Peer(train, lambda x: model.forward(x, training=False), lambda x, y: (x, y),
                lambda: compare_ops.minicnn_ops(model))


def build_numpy(job, net, lr):
    import numpy as np  # noqa: F401  (first, as in the other processes)
    import numpy_reference

    network = numpy_reference.from_spec(*load_net(job, net))

    def train(x, y):
        return float(network.train_step(x, y, lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY))

    return Peer(train, network.forward, lambda x, y: (x, y),
                lambda: compare_ops.numpy_ops(network))


def build_torch(job, net, lr):
    import numpy as np
    import torch

    # this run's own file, which the prepare job wrote into compare.py's temporary folder:
    # a whole pickled module (weights_only=False), of torch.nn classes only
    model = torch.load(os.path.join(job["dir"], f"{net}.pt"), weights_only=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    cross_entropy = torch.nn.functional.cross_entropy

    def train(x, y):
        opt.zero_grad(set_to_none=True)
        value = cross_entropy(model(x), y)
        value.backward()
        opt.step()
        return value.item()

    def infer(x):
        with torch.inference_mode():
            return model(x)

    def convert(x, y):
        return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    return Peer(train, infer, convert, lambda: compare_ops.torch_ops(model))


BUILDERS = {"minicnn": build_minicnn, "numpy": build_numpy, "torch": build_torch}


def batches(batch, count, seed):
    """``count`` distinct random (x, y) batches, the same in every process."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32),
             rng.integers(0, 10, batch)) for _ in range(count)]


def timed_steps(step, inputs, job, switches=None):
    """Warm-up steps, then steps until ``job['budget']`` seconds are spent (within the job's
    repeat bounds), cycling through ``inputs``. Returns each timed step's milliseconds; with a
    ``switches`` list, also appends each step's involuntary context switches of this process
    (read outside the timed interval)."""
    clock = time.perf_counter
    for i in range(job["warmup"]):
        step(*inputs[i % len(inputs)])
    times, start, i = [], clock(), job["warmup"]
    while len(times) < job["max_repeats"] and (len(times) < job["min_repeats"]
                                               or clock() - start < job["budget"]):
        args = inputs[i % len(inputs)]
        before = involuntary_switches() if switches is not None else 0
        t0 = clock()
        step(*args)
        times.append((clock() - t0) * 1e3)
        if switches is not None:
            switches.append(involuntary_switches() - before)
        i += 1
    return times


def involuntary_switches():
    """How many times the kernel has taken a core from this process's threads so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def row_inputs(peer, job):
    pairs = [peer.convert(x, y) for x, y in batches(job["batch"], DISTINCT_BATCHES,
                                                      1000 + job["batch"])]
    return pairs if job["mode"] == "train" else [(x,) for x, _ in pairs]


def task_rows(job):
    peer = BUILDERS[job["framework"]](job, job["net"], LR)
    step = peer.train if job["mode"] == "train" else peer.infer
    switches = [] if job.get("switches") else None
    answer = {"times_ms": timed_steps(step, row_inputs(peer, job), job, switches)}
    if switches is not None:
        answer["switches"] = switches
    return answer


def task_check(job):
    """Logits of two images and the losses of three training steps from the shared weights."""
    import numpy as np

    peer = BUILDERS[job["framework"]](job, job["net"], CHECK_LR)
    (x, y), = batches(16, 1, 7)
    xc, yc = peer.convert(x, y)
    logits = np.asarray(peer.infer(xc))[:2].astype(float).ravel().tolist()
    losses = [peer.train(xc, yc) for _ in range(3)]
    return {"logits": logits, "losses": losses, "info": framework_info(job["framework"])}


def framework_info(framework):
    """Version and thread counts this process runs with (asked after the work is done)."""
    import numpy as np

    info = {"python": sys.version.split()[0], "numpy": np.__version__}
    if framework == "minicnn":
        import minicnn
        info.update(minicnn=minicnn.__version__, threads=minicnn.get_num_threads())
    elif framework == "torch":
        import torch
        info.update(torch=torch.__version__, threads=torch.get_num_threads())
    try:
        from threadpoolctl import threadpool_info
        info["pools"] = [{k: p.get(k) for k in ("internal_api", "version", "num_threads",
                                                   "architecture", "threading_layer")}
                         for p in threadpool_info()]
    except ImportError:
        info["pools"] = None
    return info


def task_prepare(job):
    """Build each network once (seed 0), write its description and weights for the others,
    and (job "torch") its PyTorch twin, module i the twin of layer i (compare_ops needs that)."""
    import numpy as np
    from minicnn.architectures import build

    import net_spec

    out = {}
    for net in job["nets"]:
        model = build(net, rng=np.random.default_rng(0))
        spec, weights = net_spec.describe(model)
        with open(os.path.join(job["dir"], f"{net}.json"), "w") as f:
            json.dump(spec, f)
        np.savez(os.path.join(job["dir"], f"{net}.npz"), **weights)
        if job.get("torch"):
            import torch
            from minicnn.interop import to_torch

            # a twin holding one of minicnn's own modules would import minicnn when loaded,
            # and main() below would fail the PyTorch process
            torch.save(to_torch(model, per_layer=True), os.path.join(job["dir"], f"{net}.pt"))
        out[net] = {"macs_per_image": sum(d["macs"] for d in spec), "layers": len(spec)}
    return out


def task_ops(job):
    """Forward and backward of every distinct convolution and pooling layer of the networks
    at batch 64 (and the padding of each padded convolution), then of compare_ops.EXTRA's
    operations (BatchNorm2D, ConvTranspose2D), this framework alone."""
    build = BUILDERS[job["framework"]]
    x0 = batches(64, 1, 2)[0][0]
    rows, seen = [], set()
    for net in job["nets"]:
        spec, _ = load_net(job, net)
        ops = build(job, net, LR).layer_ops()
        for i, d in enumerate(spec):
            key = json.dumps({k: v for k, v in d.items() if k != "macs"}, sort_keys=True)
            if d["kind"] not in ("conv", "maxpool", "avgpool") or key in seen:
                continue
            seen.add(key)
            x = ops.prefix(x0, i)
            todo = [(f"{net}[{i}] {compare_ops.label(d)}", lambda: ops.layer(i, x))]
            if d["kind"] == "conv" and any(v for p in d["padding"] for v in p):
                pads, mode = tuple(map(tuple, d["padding"])), d["padding_mode"]
                name = f"{net}[{i}] pad {','.join(str(v) for p in pads for v in p)} {mode}"
                todo.append((name, lambda: ops.pad(pads, mode, x)))
            time_ops(todo, rows, job)
    adapter = build(job, job["nets"][0], LR).layer_ops()     # and the operations of EXTRA
    time_ops([(name, lambda d=d: adapter.extra(d)) for name, d in compare_ops.EXTRA], rows, job)
    return {"ops": rows}


def time_ops(todo, rows, job):
    """Time each (name, make) of ``todo`` (make() gives the forward and backward callables)."""
    for name, make in todo:
        try:
            pair = make()
        except Exception as e:          # a framework without this op: a "-" cell
            rows.append({"op": name, "error": f"{type(e).__name__}: {e}"})
            continue
        for what, fn in zip(("forward", "backward"), pair):
            rows.append({"op": f"{name} {what}", "times_ms": timed_steps(fn, [()], job)})


def peak_rss_mb():
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries the parent's
    peak across fork and exec into it, so a child of a big process would report the parent's."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def task_memory(job):
    """Train ``job['net']`` for ``job['steps']`` batches of 64 drawn from an MNIST-sized uint8
    set (normalised batch by batch, in NumPy alike for all) and report the peak RSS."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60000, 1, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 60000)
    peer = BUILDERS[job["framework"]](job, job["net"], LR)
    scale, shift = np.float32(1 / (255 * MNIST_STD)), np.float32(MNIST_MEAN / MNIST_STD)
    start = time.perf_counter()
    for _ in range(job["steps"]):
        idx = rng.integers(0, 60000, 64)
        peer.train(*peer.convert(images[idx] * scale - shift, labels[idx]))
    return {"peak_mb": peak_rss_mb(), "seconds": time.perf_counter() - start,
            "steps": job["steps"], "net": job["net"]}


def task_same_process(job):
    """The old way, kept as an extra: every framework in this one process (imported in the
    order NumPy, minicnn, PyTorch, as a script using all three would), steps interleaved."""
    out = []
    for net, batch, mode in job["rows"]:
        row = dict(job, batch=batch, mode=mode)
        peers = {fw: BUILDERS[fw](job, net, LR) for fw in job["frameworks"]}
        steps = {fw: (p.train if mode == "train" else p.infer) for fw, p in peers.items()}
        inputs = {fw: row_inputs(p, row) for fw, p in peers.items()}
        for fw in peers:
            for i in range(job["warmup"]):
                steps[fw](*inputs[fw][i % DISTINCT_BATCHES])
        times = {fw: [] for fw in peers}
        start, i = time.perf_counter(), 0
        while i < job["max_repeats"] and (i < job["min_repeats"] or
                                          time.perf_counter() - start < job["budget"] * len(peers)):
            for fw in peers:
                args = inputs[fw][i % DISTINCT_BATCHES]
                t0 = time.perf_counter()
                steps[fw](*args)
                times[fw].append((time.perf_counter() - t0) * 1e3)
            i += 1
        out.append({"net": net, "batch": batch, "mode": mode, "times_ms": times})
    return {"rows": out}


TASKS = {"prepare": task_prepare, "check": task_check, "rows": task_rows, "ops": task_ops,
         "memory": task_memory, "same_process": task_same_process}


def main():
    job = json.loads(sys.argv[1])
    answer = TASKS[job["task"]](job)
    if job.get("framework") in ("numpy", "torch") and "minicnn" in sys.modules:
        raise SystemExit(f"compare_child.py: the {job['framework']} process imported minicnn")
    print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
