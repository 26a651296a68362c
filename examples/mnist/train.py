"""Train a CNN on MNIST with minicnn.

    python examples/mnist/train.py                  # LeNet-5, about 1 minute on 2 cores
    python examples/mnist/train.py --arch convnet   # the Keras MNIST convnet
    python examples/mnist/train.py --arch dwsep --kind fashion-mnist
    python examples/mnist/train.py --resume         # continue an interrupted run

It prints the network's summary, trains with progress bars (saving runs/ARCH-last.npz
after every epoch), then prints the test accuracy, per-class accuracy and confusion
matrix, and saves runs/ARCH.npz unless a better finished model is already there (and,
with matplotlib installed, training curves and the first layer's filters).
The same program is ``minicnn train``; its steps are in minicnn/recipes.py.
"""
import sys

from minicnn import cli

if __name__ == "__main__":
    parser = cli.add_train_arguments(cli.Parser(prog="train.py", description=__doc__.split("\n")[0]))
    parser.set_defaults(run=cli.run_train, command="train")
    sys.exit(cli.run(parser.parse_args()))
