"""Which slow steps the host caused: step times beside the process's involuntary context
switches, minicnn and PyTorch each alone in a fresh process.

    python benchmarks/step_stalls.py [--nets lenet5,convnet] [--batches 64,256]
                                     [--rounds 4] [--budget 1] [--threads N]

compare.py's children time the rows (the same networks, weights, inputs and defaults), and
count each step's involuntary context switches (getrusage's ru_nivcsw, read outside the timed
interval): how often the kernel took a core from one of the process's threads while the step
ran. The frameworks alternate, in turn first, over the rounds. Per row and framework: the
steps, max/median (the median over rounds of each process's own, over all its steps: not
count-matched, so the framework with more steps is biased wider), how many steps took more
than SLOW times their process's median, and the share of those slow steps, and of the
others, during which a switch happened; and the steps that lost the same milliseconds in
both frameworks (longer than their process's median by (SLOW - 1) times the longer median of
the two), so that a short stall on the faster framework's shorter step does not count as
slow there alone. Slow steps with a switch far more often than the others were stalls of the
host, not of the framework.
"""
import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time

import compare

#: a step this many times its process's median counts as slow
SLOW = 1.3
FRAMEWORKS = ("minicnn", "torch")


def parse_args(argv=None):
    p = compare.Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", default="lenet5,convnet", help="comma-separated (default "
                   "lenet5,convnet)")
    p.add_argument("--batches", default="64,256", help="batch sizes (default 64,256)")
    p.add_argument("--rounds", default=4, type=int, help="rounds of alternating processes "
                   "(default 4)")
    p.add_argument("--budget", default=1.0, type=float, help="seconds of steps per process "
                   "(default 1)")
    p.add_argument("--threads", type=int, help="the same thread count for both (default: "
                   "each framework's own)")
    args = p.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    args.nets = [n for n in args.nets.split(",") if n]
    unknown = [n for n in args.nets if n not in compare.NETS]
    if unknown or not args.nets:
        p.error(f"--nets must name networks from {', '.join(compare.NETS)}, got "
                f"{','.join(args.nets) or 'none'}")
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b]
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if not args.batches or min(args.batches) < 1:
        p.error("--batches needs at least one positive batch size")
    if (args.rounds < 1 or not 0 < args.budget < math.inf
            or (args.threads is not None and args.threads < 1)):
        p.error(f"--rounds and --threads must be at least 1 and --budget a finite number "
                f"of seconds > 0; got {args.rounds}, {args.threads}, {args.budget}")
    if importlib.util.find_spec("torch") is None:
        p.error("PyTorch is not installed (pip install torch): there is nothing to compare with")
    return args


def summarise(runs, stall_ms):
    """{steps, spread, slow, slow_switched, other_switched, switches_a_step, stalled} of a
    list of per-round {"times_ms", "switches"} answers; ``stalled``: the steps longer than
    their process's median by more than ``stall_ms``."""
    slow = slow_switched = other = other_switched = stalled = 0
    spreads, switches = [], []
    for run in runs:
        median = statistics.median(run["times_ms"])
        spreads.append(max(run["times_ms"]) / median)
        switches += run["switches"]
        for t, s in zip(run["times_ms"], run["switches"]):
            if t > SLOW * median:
                slow, slow_switched = slow + 1, slow_switched + (s > 0)
            else:
                other, other_switched = other + 1, other_switched + (s > 0)
            stalled += t - median > stall_ms
    return {"steps": slow + other, "spread": statistics.median(spreads), "slow": slow,
            "slow_switched": slow_switched / slow if slow else None,
            "other_switched": other_switched / other if other else None,
            "switches_a_step": sum(switches) / len(switches),
            "stalled": stalled}


def common_stall_ms(per):
    """The same stall length for both frameworks of a row: (SLOW - 1) times the longer of
    their medians, so that a step counts as stalled by milliseconds lost, not by a ratio
    (which a shorter stall crosses on a shorter step)."""
    return (SLOW - 1) * max(statistics.median(t for run in runs for t in run["times_ms"])
                            for runs in per.values())


def share(v):
    return "-" if v is None else f"{100 * v:.0f}%"


def table(rows):
    head = ["net", "batch", "step", "framework", "steps", "max/median",
            f"steps over {SLOW}x median", "of those, with a switch", "of the others",
            "switches a step", "stalls of the same ms (longer than median + ms)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for (net, batch, mode), per in rows.items():
        stall_ms = common_stall_ms(per)
        for fw in FRAMEWORKS:
            s = summarise(per[fw], stall_ms)
            lines.append(f"| {net} | {batch} | {mode} | {compare.report.NAMES[fw]} | "
                         f"{s['steps']} | {s['spread']:.2f} | {s['slow']} | "
                         f"{share(s['slow_switched'])} | {share(s['other_switched'])} | "
                         f"{s['switches_a_step']:.2f} | {s['stalled']} "
                         f"({s['stalled'] / s['steps']:.1%}, +{compare.report.ms(stall_ms)}) |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    env = compare.child_env(args.threads)
    started, load = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    rows = {(net, batch, mode): {fw: [] for fw in FRAMEWORKS}
            for net in args.nets for batch in args.batches for mode in ("train", "infer")}
    with tempfile.TemporaryDirectory(prefix="minicnn-stalls-") as tmp:
        base = {"dir": tmp, "warmup": 3, "budget": args.budget, "min_repeats": 5,
                "max_repeats": 2000}
        compare.run_child(dict(base, task="prepare", nets=args.nets, torch=True), env)
        for r in range(args.rounds):
            for (net, batch, mode), per in rows.items():
                for fw in compare.rotated(FRAMEWORKS, r):
                    job = dict(base, task="rows", framework=fw, net=net, batch=batch,
                               mode=mode, switches=True)
                    per[fw].append(compare.run_child(job, env))
            compare.progress(f"round {r + 1}/{args.rounds} done")
    threads = "each framework's own" if args.threads is None else str(args.threads)
    print(f"**{started}**, `python benchmarks/step_stalls.py {' '.join(args.argv)}`, "
          f"commit {compare.git_commit()}, threads: {threads}, load average {load:.1f} at the "
          f"start and {os.getloadavg()[0]:.1f} at the end\n")
    print(table(rows))


if __name__ == "__main__":
    main()
