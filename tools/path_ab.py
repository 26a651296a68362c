"""A/B of one speed rule: whole training steps with the rule on and off, in one process.

    python tools/path_ab.py --arch lenet5 --off direct
    python tools/path_ab.py --arch convnet --off image --rounds 6 --steps 30

Each round times ``--steps`` training steps (as the Trainer runs them) with the rule on,
then as many with it off; the rounds alternate so that a busy neighbour on a shared
machine slows both sides alike. Prints each round's median step time and the ratio of
the medians (off / on: above 1 means the rule wins). The rules:

    direct   stride-1 direct convolutions (thresholds.DIRECT_TAPS_MAX = 0 turns them off)
    image    image-by-image convolutions (thresholds.IMAGE_MIN)
    winograd Winograd F(2x2, 3x3) forward passes (conv_winograd.ENABLED)

(minicnn.functional.thresholds holds every threshold; conv_paths.choose reads them.) A
Conv2D layer keeps its choice per input shape, so each side of a round builds the model
afresh from the same weights.
"""
import argparse
import statistics
import time

RULES = {  # rule: (module name, attribute, value that turns it off)
    "direct": ("minicnn.functional.thresholds", "DIRECT_TAPS_MAX", 0),
    "image": ("minicnn.functional.thresholds", "IMAGE_MIN", 1 << 62),
    "winograd": ("minicnn.functional.conv_winograd", "ENABLED", False),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="lenet5")
    p.add_argument("--off", choices=sorted(RULES), required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=200, help="timed steps per side and round")
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args(argv)

    import importlib

    import numpy as np
    import minicnn
    from minicnn.architectures import build

    module, attr, off_value = RULES[args.off]
    module = importlib.import_module(module)
    on_value = getattr(module, attr)
    loss = minicnn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.batch_size, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, args.batch_size)

    medians = {"on": [], "off": []}
    for _ in range(args.rounds):
        for side, value in (("on", on_value), ("off", off_value)):
            setattr(module, attr, value)
            model = build(args.arch, rng=np.random.default_rng(0))   # plans made afresh
            opt = minicnn.SGD(model.parameters(), lr=1e-3, momentum=0.9)

            def step():
                loss.forward(model.forward(x, training=True), y)
                model.backward(loss.backward(), input_grad=False)
                opt.step()

            for _ in range(5):
                step()
            times = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            medians[side].append(statistics.median(times) * 1e3)
    setattr(module, attr, on_value)
    print(f"{args.arch}, batch {args.batch_size}, rule '{args.off}': median step ms per round")
    for side, values in medians.items():
        print(f"  {side:3}  " + "  ".join(f"{v:6.2f}" for v in values)
              + f"   median {statistics.median(values):.3f}")
    ratio = statistics.median(medians["off"]) / statistics.median(medians["on"])
    print(f"  off / on = {ratio:.3f}")


if __name__ == "__main__":
    main()
