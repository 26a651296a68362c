"""Train a small ResNet (BatchNorm, residual blocks, global average pooling) on Fashion-MNIST.

    export MINICNN_DATA=/work/shared/data        # a folder holding fashion-mnist/
    python examples/fashion_mnist/train.py                 # the ResNet, 25 epochs
    python examples/fashion_mnist/train.py --arch lenet5   # the comparison row
    python examples/fashion_mnist/train.py --epochs 1 --limit 2000   # a quick look

Everything goes through minicnn's public API: the network is a Sequential of Residual
blocks, trained by a Trainer with SGD (Nesterov momentum, weight decay) and a one-cycle
learning rate, on images shifted by up to 2 pixels and flipped left-right at random.
It prints the summary, one line per epoch, and the test accuracy and time, and saves the
model to runs/fashion-ARCH.npz (load it with minicnn.load).
"""
import argparse
import os
import time

import numpy as np

import minicnn as mc
from minicnn.data import FASHION_MEAN, FASHION_STD, load_mnist, normalize, random_shift


def conv_bn(cin, cout, stride, rng):
    """A 3x3 convolution without bias (BatchNorm's shift replaces it), then BatchNorm."""
    return [mc.Conv2D(cin, cout, 3, stride=stride, padding=1, bias=False, rng=rng),
            mc.BatchNorm2D(cout)]


def basic_block(cin, cout, stride, rng):
    """ResNet's basic block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut
    is the identity, or a strided 1x1 convolution and BatchNorm where the shape changes."""
    body = mc.Sequential(*conv_bn(cin, cout, stride, rng), mc.ReLU(), *conv_bn(cout, cout, 1, rng))
    shortcut = None
    if stride != 1 or cin != cout:
        shortcut = mc.Sequential(mc.Conv2D(cin, cout, 1, stride=stride, bias=False, rng=rng),
                                 mc.BatchNorm2D(cout))
    return [mc.Residual(body, shortcut), mc.ReLU()]


def resnet(stem=32, widths=(64, 128), rng=None):
    """28x28 -> a 3x3 stem of ``stem`` channels, then one basic block per width, each halving
    the size (14x14, 7x7), global average pooling and a linear classifier."""
    layers = [*conv_bn(1, stem, 1, rng), mc.ReLU()]
    cin = stem
    for width in widths:
        layers += basic_block(cin, width, 2, rng)
        cin = width
    layers += [mc.GlobalAvgPool2D(), mc.Flatten(), mc.Dense(cin, 10, weight_init="glorot", rng=rng)]
    return mc.Sequential(*layers, input_shape=(1, 28, 28))


def augment(xb, rng):
    """Shift by up to 2 pixels, and flip half the images left-right (clothes are symmetric
    enough that a mirrored coat is still a coat)."""
    xb = random_shift(xb, rng, max_shift=2)
    flip = rng.random(len(xb)) < 0.5
    xb[flip] = xb[flip, :, ::-1]
    return xb


def transform(xb):
    return normalize(xb, FASHION_MEAN, FASHION_STD)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("resnet", "lenet5"), default="resnet")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=None,
                        help="the one-cycle peak (default 0.2 for resnet, 0.1 for lenet5)")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where to save (runs/fashion-ARCH.npz)")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load_mnist(kind="fashion-mnist")
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
    mc.seed(args.seed)
    model = resnet(rng=args.seed) if args.arch == "resnet" else mc.architectures.lenet5(args.seed)
    model.summary((1, 28, 28))
    lr = args.lr or (0.2 if args.arch == "resnet" else 0.1)
    optimizer = mc.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = args.epochs * -(-len(x_train) // args.batch_size)
    trainer = mc.Trainer(model, mc.SoftmaxCrossEntropy(), optimizer,
                         mc.OneCycleLR(optimizer, max_lr=lr, total_steps=steps))
    start = time.perf_counter()
    trainer.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                seed=args.seed, transform=transform, augment=augment)
    seconds = time.perf_counter() - start
    _, accuracy = trainer.evaluate(x_test, y_test, transform=transform)
    print(f"{args.arch}: test accuracy {accuracy:.2%} after {args.epochs} epochs "
          f"in {seconds:.0f} s of training ({seconds / args.epochs:.0f} s an epoch)")
    out = args.out or os.path.join("runs", f"fashion-{args.arch}.npz")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    model.save(out, metadata={"test_accuracy": accuracy, "epochs": args.epochs,
                              "train_seconds": seconds})
    return accuracy


if __name__ == "__main__":
    main()
