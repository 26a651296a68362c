"""DistributedTrainer: the Trainer, data-parallel over MPI ranks (one process per rank).

Each rank holds the whole model. Per global batch of ``batch_size`` images (the same shuffle,
drawn from the seed, on every rank; augmentation, when given, applied to the whole batch with
the same random draws), rank r trains on images r, r + world, r + 2 world, ... of it, as
PyTorch's DistributedSampler deals them. The last, shorter batch of an epoch is dealt the same
way (a rank may get one image fewer, or none), nothing dropped and nothing repeated.

After the backward pass one allreduce sums, over the ranks, a flat float64 buffer holding every
gradient (each rank's mean-loss gradient weighted by its share, images_r), its loss and count
of right answers and a Ctrl-C flag. Dividing by the batch's images gives, on every rank, the
gradient of the global batch's mean loss (what one process computes, up to rounding), so the
optimizer's update and state are the same everywhere. Loss and accuracy are those of the
global batch too.

The sum's order: MPICH and Open MPI pick a reduction algorithm from the number of ranks and
the message size, never from which rank arrives first, so a run repeats bit for bit; with two
ranks the sum is a + b on both, equal by commutativity. Each rank's gradient enters the sum in
float64, whatever the parameters' dtype, and the result is rounded once into it.

BatchNorm in training normalises each rank's share with that share's own statistics (as
PyTorch's DistributedDataParallel does without SyncBatchNorm), so with it a step is not one
process's step on the whole batch; its running statistics are averaged over the ranks after
every epoch and before every evaluation (``average_buffers``).
"""
import signal
import warnings
import zlib

import numpy as np

from .. import trainer_checks as checks
from ..callbacks import Callback
from ..rng import get_rng
from ..trainer import History, Trainer, TrainingDivergedError, _InterruptFlag
from .comm import Communicator, RankMismatchError, stop_all_on_error

__all__ = ["DistributedTrainer", "GradientBuffer"]


class GradientBuffer:
    """One float64 array: every parameter's gradient, then EXTRA slots (loss sum, images
    classified right, images, Ctrl-C requests); allocated once."""

    EXTRA = 4

    def __init__(self, params):
        self.params = list(params)
        self.sizes = [p.value.size for p in self.params]
        self.total = sum(self.sizes)
        self.flat = np.zeros(self.total + self.EXTRA, dtype=np.float64)
        ends = np.cumsum([0] + self.sizes)
        self.views = [self.flat[a:b] for a, b in zip(ends[:-1], ends[1:])]

    @property
    def nbytes(self):
        return self.flat.nbytes

    def pack(self, images, loss_sum, right, interrupt):
        """Each gradient times ``images`` (this rank's share), in float64, and the extras."""
        if images:
            for p, view in zip(self.params, self.views):
                np.multiply(p.grad, images, out=view.reshape(p.grad.shape), dtype=np.float64)
        else:  # no image on this rank in a short last batch: it adds nothing
            self.flat[:self.total] = 0.0
        self.flat[self.total:] = (loss_sum, right, images, interrupt)

    def unpack(self):
        """Each summed gradient divided by the batch's images into its parameter's grad;
        returns (mean loss, images right, images, Ctrl-C requested anywhere)."""
        loss_sum, right, images, interrupt = self.flat[self.total:]
        for p, view in zip(self.params, self.views):
            np.divide(view.reshape(p.grad.shape), images, out=p.grad, casting="same_kind")
        return float(loss_sum / images), int(right), int(images), bool(interrupt > 0)


class _AgreedInterrupt(_InterruptFlag):
    """mpiexec passes Ctrl-C to every rank, but each may get it at another step: the request
    travels with the step's gradients, and every rank stops after the same step."""

    def __init__(self):
        super().__init__()
        self.local = False

    def _handle(self, signum, frame):
        self.local = True
        signal.signal(signal.SIGINT, self._old)  # a second Ctrl-C behaves as usual


class _CompareWeights(Callback):
    """The first callback, on every rank: the ranks' weights must be equal (a checksum), or an
    MPI library whose sums differed between ranks would make them drift apart unseen."""

    def on_epoch_end(self, trainer, epoch, logs):
        trainer.average_buffers(f"the running statistics after epoch {epoch}")
        table = trainer.comm.allgather([_checksum(trainer.model)], f"the weights after epoch {epoch}")
        if len(set(table[:, 0])) > 1:
            raise RankMismatchError(f"DistributedTrainer: after epoch {epoch} the ranks' weights "
                                    f"differ (checksums {table[:, 0].tolist()}): the allreduce "
                                    "gave the ranks different sums, or a rank changed its weights")


class _ShareDecisions(Callback):
    """The last callback, on every rank: rank 0's callbacks alone run (they write files), and
    what they decide (EarlyStopping's stop, restored best weights) reaches the others."""

    def on_epoch_end(self, trainer, epoch, logs):
        flag = np.array([1 if trainer.stop_training else 0], dtype=np.int64)
        trainer.comm.bcast_array(flag, f"rank 0's callbacks after epoch {epoch}")
        trainer.stop_training = bool(flag[0])

    def on_train_end(self, trainer):
        trainer.sync()


def _checksum(model):
    """CRC-32 of the parameters and float buffers (a rank without an image in a short last
    batch skips one update of BatchNorm's batch counter, so integer buffers may differ)."""
    crc = 0
    arrays = [p.value for p in model.parameters()] + [
        b.value for b in getattr(model, "buffers", list)() if np.asarray(b.value).dtype.kind == "f"]
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1), crc)
    return crc


class DistributedTrainer(Trainer):
    """Train ``model`` data-parallel over the ranks of ``comm`` (mpi4py's COMM_WORLD by
    default); start one process per rank with ``mpiexec -n N python script.py``.

    Every rank runs the same script with the same data and arguments (checked when ``fit``
    starts). ``fit`` first copies rank 0's weights, optimizer and scheduler state, epoch, seed
    and history to every rank (``sync``); the callbacks run on rank 0 alone, so only rank 0
    writes checkpoints and logs, and only rank 0 shows progress (``verbose``); ``save_state``
    writes on rank 0 alone. ``evaluate`` splits the data between the ranks and reduces loss and
    accuracy. A collective that waits more than ``timeout`` seconds (default 120, or
    MINICNN_MPI_TIMEOUT) raises DistributedTimeoutError; an exception on one rank aborts the
    run on every rank.
    """

    def __init__(self, model, loss, optimizer, scheduler=None, comm=None, timeout=None):
        super().__init__(model, loss, optimizer, scheduler)
        self.comm = comm if isinstance(comm, Communicator) else Communicator(comm, timeout)
        self.rank, self.world_size = self.comm.rank, self.comm.size
        self.gradients = GradientBuffer(optimizer.params)
        self._interrupt = None

    @property
    def is_main(self):
        return self.rank == 0

    def fit(self, x, y, epochs, batch_size=64, shuffle=True, validation_data=None, callbacks=(),
            seed=None, verbose=1, transform=None, augment=None, initial_epoch=None):
        """Trainer.fit over the ranks (see the class); returns the History on every rank."""
        with stop_all_on_error(self.comm, (TrainingDivergedError,)):
            self.sync()
            callbacks = checks.check_callbacks("DistributedTrainer.fit", callbacks)
            self._check_same_everywhere(x, y, validation_data, epochs, batch_size, shuffle, seed,
                                        initial_epoch)
            if seed is None and self.seed is None:  # rank 0 draws it for every rank
                seed = self.comm.bcast_object(int(get_rng().integers(2**31)), "the seed")
            callbacks = [_CompareWeights(), *(callbacks if self.is_main else ()), _ShareDecisions()]
            with warnings.catch_warnings():
                if not self.is_main:  # said once, by rank 0
                    warnings.simplefilter("ignore")
                return super().fit(x, y, epochs, batch_size=batch_size, shuffle=shuffle,
                                   validation_data=validation_data, callbacks=callbacks,
                                   seed=seed, verbose=verbose if self.is_main else 0,
                                   transform=transform, augment=augment,
                                   initial_epoch=initial_epoch)

    def sync(self):
        """Make every rank's weights, optimizer and scheduler state, epoch, seed and history
        rank 0's (e.g. after ``load_state`` on rank 0 alone)."""
        state = None
        if self.is_main:
            state = {"params": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                     "epoch": self.epoch, "seed": self.seed, "history": dict(self.history)}
        state = self.comm.bcast_object(state, "rank 0's weights and trainer state")
        if self.is_main:
            return
        self.model.load_state_dict(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.seed = state["epoch"], state["seed"]
        self.history = History(state["history"])

    def average_buffers(self, what="the running statistics"):
        """Make every rank's float buffers (BatchNorm's running mean and variance) their mean
        over the ranks. Each rank updates them from its own share of each batch; the running
        mean of the shares' means is the running mean of the batches' means (the update is
        linear), and the running variance comes close to the batches' running variance."""
        buffers = [b for b in getattr(self.model, "buffers", list)()
                   if np.asarray(b.value).dtype.kind == "f"]
        if not buffers or self.world_size == 1:
            return
        flat = np.concatenate([np.asarray(b.value, dtype=np.float64).reshape(-1) for b in buffers])
        self.comm.allreduce_sum(flat, what)
        flat /= self.world_size
        start = 0
        for b in buffers:
            b.value[...] = flat[start:start + b.value.size].reshape(b.value.shape)
            start += b.value.size

    def save_state(self, path):
        """Trainer.save_state on rank 0; the other ranks hold the same state and write nothing."""
        if self.is_main:
            super().save_state(path)

    def evaluate(self, x, y, batch_size=256, transform=None):
        """(mean loss, accuracy) on ``x``, ``y``: each rank evaluates a contiguous block of it,
        and the sums are reduced; accuracy is None for non-classifiers."""
        with stop_all_on_error(self.comm):
            self.average_buffers(f"the running statistics before the evaluation after epoch "
                                 f"{self.epoch}")
            n = len(x)
            block = slice(self.rank * n // self.world_size, (self.rank + 1) * n // self.world_size)
            xs, ys = x[block], y[block]
            classify = hasattr(self.loss, "probs")
            sums = np.zeros(3)
            if len(ys):
                out = self.predict_logits(xs, batch_size, transform)
                sums[:] = (self.loss.forward(out, ys) * len(ys),
                           np.sum(out.argmax(axis=1) == ys) if classify else 0, len(ys))
            self.comm.allreduce_sum(sums, f"the evaluation after epoch {self.epoch}")
            loss_sum, right, images = sums
            return float(loss_sum / images), (float(right / images) if classify else None)

    # --- the Trainer's hooks ---------------------------------------------------------------
    def _interrupt_flag(self):
        self._interrupt = _AgreedInterrupt()
        return self._interrupt

    def _share(self, xb, yb):
        return xb[self.rank::self.world_size], yb[self.rank::self.world_size]

    def _step(self, b, xb, yb, classify):
        images, loss_sum, right = len(yb), 0.0, 0
        if images:
            out = self.model.forward(xb, training=True)
            value = self.loss.forward(out, yb)
            self._backward(self.loss.backward())
            loss_sum = value * images
            right = int(np.sum(out.argmax(axis=1) == yb)) if classify else 0
        self.gradients.pack(images, loss_sum, right, bool(self._interrupt and self._interrupt.local))
        self.comm.allreduce_sum(self.gradients.flat,
                                f"the gradients of epoch {self.epoch + 1}, batch {b + 1}")
        value, right, images, interrupt = self.gradients.unpack()
        self._check_finite(value, b)  # on every rank alike: the value is the global batch's
        self.optimizer.step()
        if interrupt and self._interrupt is not None:
            self._interrupt.requested = True
        return value, images, right

    def _check_same_everywhere(self, x, y, validation_data, epochs, batch_size, shuffle, seed,
                               initial_epoch):
        """RankMismatchError on every rank when the ranks' data, arguments or models differ."""
        def crc(a):
            return zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1))

        model = ";".join(f"{p.name}:{p.value.shape}:{p.value.dtype}" for p in self.model.parameters())
        facts = {"len(x)": len(x), "x's bytes (crc32)": crc(x), "y's bytes (crc32)": crc(y),
                 "validation_data (crc32)": (crc(validation_data[0]) ^ crc(validation_data[1])
                                             if validation_data is not None else -1),
                 "epochs": epochs, "batch_size": batch_size, "shuffle": int(bool(shuffle)),
                 "seed": -1 if seed is None else seed,
                 "initial_epoch": -1 if initial_epoch is None else initial_epoch,
                 "the model's parameters": zlib.crc32(model.encode()),
                 "the optimizer": zlib.crc32(repr(self.optimizer).encode())}
        table = self.comm.allgather(list(facts.values()), "the other ranks' fit arguments")
        differ = [name for i, name in enumerate(facts) if len(set(table[:, i])) > 1]
        if differ:
            i = list(facts).index(differ[0])
            values = ", ".join(f"rank {r} {v}" for r, v in enumerate(table[:, i]))
            raise RankMismatchError(f"DistributedTrainer.fit: every rank must be given the same "
                                    f"data and arguments, but {', '.join(differ)} differ "
                                    f"({differ[0]}: {values})")
