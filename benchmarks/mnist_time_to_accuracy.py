"""Wall time to 99.0% MNIST test accuracy: LeNet-5 in minicnn and in PyTorch, same recipe.

    python benchmarks/mnist_time_to_accuracy.py [--threads N] [--target 0.99] [--epochs 10]

The recipe is the one of ``minicnn train`` (minicnn.recipes): LeNet-5, batch 64, SGD with
lr 0.02, momentum 0.9 and weight decay 5e-4, cosine decay over 10 epochs, images
normalised batch by batch from uint8. Both frameworks start from the same weights and
see the same batches in the same order (one NumPy generator, seed 0). Each runs in a
fresh process, one after the other (never side by side), so each gets the whole machine
and its peak resident memory is its own. The test set is scored after every epoch; the
time to the target counts training only, evaluation is reported apart. Needs the MNIST
files (``MINICNN_DATA`` or ``--data-dir``).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def peak_rss_kb():
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries the parent's
    peak across fork and exec into it, so a child of a big process would report the parent's."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None,
                   help="the same thread count for both (default: each framework's own)")
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--epochs", type=int, default=10, help="the recipe's epochs (cosine period)")
    p.add_argument("--full", action="store_true", help="train every epoch, not only until the target")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--peers", default="minicnn,torch")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--child", choices=("minicnn", "torch"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run(peer, args):
    """Train in this process and print one JSON line per epoch."""
    import numpy as np    # first, as a user's script does
    if peer == "torch":
        import torch
    # the PyTorch process imports minicnn too, for the data, the batches and the starting
    # weights only: importing minicnn changes nothing outside it (benchmarks/import_order.py)
    import minicnn

    from minicnn.architectures import lenet5
    from minicnn.data import load_mnist, normalize
    if args.threads:
        minicnn.set_num_threads(args.threads)
    (x, y), (xt, yt) = load_mnist(args.data_dir, download=False)
    model = lenet5(rng=np.random.default_rng(0))
    lr, epochs = 0.02, args.epochs
    if peer == "minicnn":
        loss = minicnn.SoftmaxCrossEntropy()
        opt = minicnn.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        schedule = minicnn.CosineAnnealingLR(opt, T_max=epochs)

        def step(xb, yb):
            loss.forward(model.forward(xb, training=True), yb)
            model.backward(loss.backward(), input_grad=False)
            opt.step()

        def accuracy():
            preds = [model.forward(normalize(xt[i:i + 1000]), training=False).argmax(1)
                     for i in range(0, len(xt), 1000)]
            return float((np.concatenate(preds) == yt).mean())
    else:
        from minicnn.interop import to_torch
        if args.threads:
            torch.set_num_threads(args.threads)
        net = to_torch(model)
        del model
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

        def step(xb, yb):
            opt.zero_grad(set_to_none=True)
            out = net(torch.from_numpy(xb))
            torch.nn.functional.cross_entropy(out, torch.from_numpy(yb.astype(np.int64))).backward()
            opt.step()

        def accuracy():
            with torch.inference_mode():
                preds = [net(torch.from_numpy(normalize(xt[i:i + 1000]))).argmax(1).numpy()
                         for i in range(0, len(xt), 1000)]
            return float((np.concatenate(preds) == yt).mean())

    rng = np.random.default_rng(0)
    train_seconds = 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        t0 = time.perf_counter()
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            step(normalize(x[idx]), y[idx])
        train_seconds += time.perf_counter() - t0
        schedule.step()
        t0 = time.perf_counter()
        acc = accuracy()
        eval_seconds = time.perf_counter() - t0
        peak = peak_rss_kb() / 1024
        print(json.dumps({"peer": peer, "epoch": epoch, "test_accuracy": acc,
                          "train_seconds": train_seconds, "eval_seconds": eval_seconds,
                          "peak_mb": peak}), flush=True)
        if acc >= args.target and not args.full:
            break


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        for var in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.child:
        return run(args.child, args)
    results = {}
    for peer in [p for p in args.peers.split(",") if p]:
        if peer == "torch":
            try:
                import importlib.util
                if importlib.util.find_spec("torch") is None:
                    raise ImportError
            except ImportError:
                print("PyTorch is not installed: skipped (pip install torch)")
                continue
        cmd = [sys.executable, os.path.abspath(__file__), "--child", peer,
               "--target", str(args.target), "--epochs", str(args.epochs)] + \
              (["--threads", str(args.threads)] if args.threads else []) + \
              (["--full"] if args.full else []) + \
              (["--data-dir", args.data_dir] if args.data_dir else [])
        epochs = []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:
                e = json.loads(line)
                epochs.append(e)
                print(f"{peer:8} epoch {e['epoch']:2d}: test accuracy {e['test_accuracy']:.2%}, "
                      f"{e['train_seconds']:7.1f} s of training, peak RSS {e['peak_mb']:.0f} MB",
                      flush=True)
        if proc.returncode:
            raise SystemExit(f"{peer} run failed (exit {proc.returncode})")
        reached = next((e for e in epochs if e["test_accuracy"] >= args.target), None)
        results[peer] = {"epochs": epochs, "reached": reached,
                         "peak_mb": max(e["peak_mb"] for e in epochs)}
    print()
    for peer, r in results.items():
        hit = r["reached"]
        when = (f"{hit['train_seconds']:.1f} s (epoch {hit['epoch']})" if hit
                else f"not reached in {len(r['epochs'])} epochs")
        print(f"{peer:8} time to {args.target:.1%}: {when}; peak RSS {r['peak_mb']:.0f} MB")
    if all(results.get(p, {}).get("reached") for p in ("minicnn", "torch")):
        ratio = results["torch"]["reached"]["train_seconds"] / results["minicnn"]["reached"]["train_seconds"]
        print(f"PyTorch time / minicnn time: {ratio:.2f} (above 1: minicnn faster)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
