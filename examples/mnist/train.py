"""Train a CNN on MNIST with minicnn.

    python examples/mnist/train.py                  # LeNet-5, about 1 minute on 2 cores
    python examples/mnist/train.py --arch convnet   # the Keras MNIST convnet
    python examples/mnist/train.py --arch dwsep --kind fashion-mnist

It prints the network's summary, trains with progress bars, then prints the test
accuracy, per-class accuracy and confusion matrix, and saves runs/ARCH.npz (and,
with matplotlib installed, training curves and the first layer's filters).
The same program is ``minicnn train``; its steps are in minicnn/recipes.py.
"""
import argparse
import sys

from minicnn.cli import add_train_arguments, run_train

if __name__ == "__main__":
    parser = add_train_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    sys.exit(run_train(parser.parse_args()))
