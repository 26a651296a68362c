"""One rank of the data-parallel runs of tests/test_distributed.py, which starts it as

    mpiexec -n 2 python distributed_worker.py MODE DIR

MODE:
  equal     20 float64 steps of LeNet-5 on 2 ranks (one epoch, then a second one resumed by a
            fresh trainer from the state file rank 0 wrote), then rank 0 trains the same
            network alone on the same global batches and prints the largest weight and
            history differences, as ``MAXDIFF weights history``; and each rank's weights and
            optimizer state digest as ``DIGEST rank hex``
  batchnorm a network with BatchNorm2D, one epoch with validation: each rank prints the
            digest of its whole state (buffers too) and its first running mean, as
            ``BN rank hex value``
  raise     rank 1 raises ValueError in its fourth batch
  kill      rank 1 kills itself (SIGKILL) in its fourth batch
  hang      rank 1 sleeps for ten minutes in its fourth batch
  mismatch  rank 1 is given one training image fewer
  drift     rank 1 changes a weight of its own in its fourth batch
"""
import hashlib
import os
import signal
import sys
import time

import numpy as np

import minicnn
from minicnn.architectures import lenet5
from minicnn.data import normalize, random_shift
from minicnn.distributed import DistributedTrainer, rank

#: 10 batches an epoch; the last holds 9 images, 5 for rank 0 and 4 for rank 1
N, BATCH, EPOCHS = 153, 16, 2


def dataset():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (N, 28, 28), dtype=np.uint8)
    return x, rng.integers(0, 10, N), x[:40], rng.integers(0, 10, 40)


def build(trainer_class, init_seed):
    minicnn.seed(init_seed)
    model = lenet5().astype(np.float64)
    sgd = minicnn.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return trainer_class(model, minicnn.SoftmaxCrossEntropy(), sgd,
                         minicnn.CosineAnnealingLR(sgd, T_max=EPOCHS))


def failing_transform(mode, model):
    calls = [0]

    def transform(xb):
        calls[0] += 1
        if rank() == 1 and calls[0] == 4:
            if mode == "raise":
                raise ValueError("worker: rank 1 fails on purpose")
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "hang":
                time.sleep(600)
            if mode == "drift":
                model.parameters()[0].value[0, 0, 0, 0] += 1e-3
        return normalize(xb)

    return transform


def digest(trainer):
    h = hashlib.sha256()
    for name, value in sorted(trainer.model.state_dict().items()):
        h.update(name.encode() + np.ascontiguousarray(value).tobytes())
    for name, state in sorted(trainer.optimizer.state_dict()["state"].items()):
        for key, value in sorted(state.items()):
            h.update(f"{name}.{key}".encode() + value.tobytes())
    return h.hexdigest()[:16]


def equal(folder):
    x, y, vx, vy = dataset()
    fit = dict(batch_size=BATCH, seed=5, verbose=0, transform=normalize, augment=random_shift,
               validation_data=(vx, vy))
    state = os.path.join(folder, "state.npz")
    first = build(DistributedTrainer, init_seed=0)
    first.fit(x, y, epochs=1, **fit)
    first.save_state(state)                     # rank 0 alone writes it
    # a fresh trainer whose own initial weights differ on each rank: rank 0's state wins
    second = build(DistributedTrainer, init_seed=100 + rank())
    if rank() == 0:
        second.load_state(state)
    history = second.fit(x, y, epochs=1, **fit)
    print(f"DIGEST {rank()} {digest(second)}", flush=True)
    if rank() != 0:
        return
    alone = build(minicnn.Trainer, init_seed=0)
    expected = alone.fit(x, y, epochs=EPOCHS, **fit)
    weights = max(float(np.max(np.abs(a.value - b.value)))
                  for a, b in zip(alone.model.parameters(), second.model.parameters()))
    logs = max(abs(a - b) for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr")
               for a, b in zip(expected[key], history[key]))
    print(f"MAXDIFF {weights:.3e} {logs:.3e} steps {alone.optimizer.steps} "
          f"{second.optimizer.steps}", flush=True)


def batchnorm():
    x, y, vx, vy = dataset()
    minicnn.seed(0)
    model = minicnn.Sequential(minicnn.Conv2D(1, 4, 3), minicnn.BatchNorm2D(4), minicnn.ReLU(),
                               minicnn.MaxPool2D(2), minicnn.Flatten(), minicnn.Dense(676, 10))
    sgd = minicnn.SGD(model.parameters(), lr=0.05)
    trainer = DistributedTrainer(model, minicnn.SoftmaxCrossEntropy(), sgd)
    trainer.fit(x, y, epochs=1, batch_size=BATCH, seed=5, verbose=0, transform=normalize,
                validation_data=(vx, vy))
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode() + np.ascontiguousarray(value).tobytes())
    print(f"BN {rank()} {h.hexdigest()[:16]} {model.layers[1].buffers['running_mean'][0]:.6f}",
          flush=True)


def failing(mode):
    x, y, _, _ = dataset()
    if mode == "mismatch" and rank() == 1:
        x, y = x[:-1], y[:-1]
    trainer = build(DistributedTrainer, init_seed=0)
    trainer.fit(x, y, epochs=EPOCHS, batch_size=BATCH, seed=5, verbose=0,
                transform=failing_transform(mode, trainer.model))
    print(f"FINISHED {rank()}", flush=True)


if __name__ == "__main__":
    mode, folder = sys.argv[1], sys.argv[2]
    if mode == "equal":
        equal(folder)
    elif mode == "batchnorm":
        batchnorm()
    else:
        failing(mode)
