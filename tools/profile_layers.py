"""Where a training step's time goes: median forward and backward time of every layer.

    python tools/profile_layers.py [--arch convnet] [--batch-size 64] [--steps 200]
    python tools/profile_layers.py --arch lenet5 --batch-size 256 --inference

Runs training steps exactly as the Trainer does (the first layer computes no input
gradient) on random data and prints, per layer, the median forward and backward times,
then the optimizer step and the whole step. Use it to find what to speed up; use
benchmarks/compare.py to claim a speed-up.
"""
import argparse
import statistics
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="convnet")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--inference", action="store_true", help="forward passes only")
    args = p.parse_args(argv)

    import numpy as np
    import minicnn
    from minicnn.architectures import build

    if args.threads:
        minicnn.set_num_threads(args.threads)
    model = build(args.arch, rng=np.random.default_rng(0))
    loss = minicnn.SoftmaxCrossEntropy()
    opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch_size, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size)
    layers = model.layers
    fwd = [[] for _ in layers]
    bwd = [[] for _ in layers]
    opt_times, steps = [], []
    warmup = min(20, args.steps // 5)
    for _ in range(args.steps):
        start = time.perf_counter()
        a = x
        for i, layer in enumerate(layers):
            t0 = time.perf_counter()
            a = layer.forward(a, training=not args.inference)
            fwd[i].append(time.perf_counter() - t0)
        if not args.inference:
            loss.forward(a, y)
            d = loss.backward()
            for i in reversed(range(len(layers))):
                t0 = time.perf_counter()
                if i == 0 and layers[0].skips_input_grad:     # as Sequential.backward(input_grad=False)
                    layers[0].backward(d, need_dx=False)
                else:
                    d = layers[i].backward(d)
                bwd[i].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            opt.step()
            opt_times.append(time.perf_counter() - t0)
        steps.append(time.perf_counter() - start)

    def ms(ts):
        return f"{statistics.median(ts[warmup:]) * 1e3:.3f}" if ts else "-"

    print(f"{args.arch}, batch {args.batch_size}, {minicnn.get_num_threads()} threads, "
          f"{'inference' if args.inference else 'training'} (median ms of {args.steps} steps)")
    print(f"{'#':>2}  {'layer':58} {'forward':>8} {'backward':>9}")
    for i, layer in enumerate(layers):
        print(f"{i:2d}  {repr(layer)[:58]:58} {ms(fwd[i]):>8} {ms(bwd[i]):>9}")
    if opt_times:
        print(f"{'':4}{'optimizer step':58} {ms(opt_times):>8}")
    print(f"{'':4}{'whole step':58} {ms(steps):>8}")


if __name__ == "__main__":
    main()
