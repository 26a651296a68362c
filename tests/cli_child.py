"""Run ``minicnn`` (cli.main) in a child process that tests can interrupt at known moments.

    python cli_child.py train --out DIR ...

Environment:
  CHILD_FAKE_DATA=DIR  use the synthetic MNIST written in DIR/mnist (its hashes are read from
                       the files, so the loader accepts them)
  CHILD_STEPS=1        after each optimizer step print ``STEP n``
  CHILD_SLOW_SAVE=name while writing a file of that base name, print ``SAVING name`` once the
                       temporary file is written (not yet renamed into place)
  CHILD_PAUSE_AT=a,b   after printing one of these markers, sleep CHILD_PAUSE seconds (default
                       0.5): the parent's signal lands at that very moment, however busy the machine

The markers are flushed at once, so a parent reading stdout can send a signal in the middle
of an epoch or of a save.
"""
import hashlib
import os
import signal
import sys
import time


def fake_data(folder):
    from minicnn.data import mnist as M

    files = {n: os.path.join(folder, "mnist", n) for n in M.FILES}
    digests, sizes = {}, {}
    for name, path in files.items():
        with open(path, "rb") as f:
            content = f.read()
        digests[name], sizes[name] = hashlib.sha256(content).hexdigest(), len(content)
    M.DATASETS["mnist"] = {"mirrors": (), "sha256": digests}
    M.SIZES = sizes


def marker(text):
    print(text, flush=True)
    if text in os.environ.get("CHILD_PAUSE_AT", "").split(","):
        time.sleep(float(os.environ.get("CHILD_PAUSE", "0.5")))


def count_steps():
    from minicnn import optim

    real_step = optim.SGD.step
    count = [0]

    def step(self):
        real_step(self)
        count[0] += 1
        marker(f"STEP {count[0]}")

    optim.SGD.step = step


def slow_saves(name):
    import minicnn._atomic as io
    import minicnn.trainer as trainer

    real = io.atomic_write

    def atomic_write(path, write_fn, *args, **kwargs):
        def write_slowly(f):
            write_fn(f)
            if os.path.basename(os.fspath(path)) == name:
                f.flush()
                marker(f"SAVING {name}")
        return real(path, write_slowly, *args, **kwargs)

    io.atomic_write = atomic_write
    trainer.atomic_write = atomic_write


if __name__ == "__main__":
    # Ctrl-C as at a terminal, however the tests were started: a shell without job control
    # starts background commands with SIGINT ignored, children inherit that, and Python then
    # leaves it ignored, so the signals these tests send would do nothing
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("CHILD_FAKE_DATA"):
        fake_data(os.environ["CHILD_FAKE_DATA"])
    if os.environ.get("CHILD_STEPS"):
        count_steps()
    if os.environ.get("CHILD_SLOW_SAVE"):
        slow_saves(os.environ["CHILD_SLOW_SAVE"])
    from minicnn import cli

    sys.exit(cli.main(sys.argv[1:]))
