"""minicnn beside a plain-NumPy CNN and PyTorch, each framework measured alone.

    python benchmarks/compare.py                  # everything, 3 rounds
    python benchmarks/compare.py --quick          # batch 64 only, a short budget
    python benchmarks/compare.py --json out.json  # also write every step time

Every timed row (network x batch x training step or inference) runs in a fresh process per
framework (compare_child.py), imported as a user's script imports it: NumPy first, then
minicnn; PyTorch's and the NumPy CNN's processes never import minicnn (their networks are
built from the weights and description minicnn's process wrote). Each runs at its own
defaults: this script sets no environment variable unless ``--threads N`` is given, which puts
N in OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and MINICNN_NUM_THREADS of every
child alike. The processes alternate over ``--rounds`` rounds (minicnn, PyTorch, NumPy, the
order rotated each round); each child does warm-up steps, then steps until ``--budget``
seconds are spent, cycling through 8 distinct random batches. The table gives each
framework's median and min-max over all steps of all rounds, max/median, and the ratios
peer median / minicnn median (above 1: minicnn is faster). Before timing, each framework's
process computes logits and three training steps' losses from the same weights on one batch;
if they differ, nothing is timed. Extras, labelled as such: the per-operation table, peak
memory of a LeNet-5 run (fresh process per framework) and ``--same-process`` (the old way).
Progress goes to stderr, the markdown report to stdout.
"""
import argparse
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import compare_peak
import compare_report as report

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "compare_child.py")
NETS = ("lenet5", "convnet", "dwsep")
ORDER = ("minicnn", "torch", "numpy")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINICNN_NUM_THREADS")
#: variables that change a framework's speed; the header lists any the environment sets
WATCHED_VARS = THREAD_VARS + ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND",
                              "OPENBLAS_CORETYPE", "OPENBLAS_THREAD_TIMEOUT", "MALLOC_ARENA_MAX",
                              "MINICNN_GEMM", "MINICNN_WINOGRAD", "LD_PRELOAD")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line for a user's mistake (no usage block), exit code 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, help="the same thread count for every framework "
                   "(set in each child's environment); default: each framework's own")
    p.add_argument("--nets", default=",".join(NETS), help="comma-separated (default: all three)")
    p.add_argument("--batches", help="batch sizes (default 1,64,256; 64 with --quick)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of alternating processes "
                   "(default 3)")
    p.add_argument("--budget", type=float, help="seconds of timed steps per process, i.e. "
                   "per row, framework and round (default 1; 0.4 with --quick)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--min-repeats", type=int, default=5)
    p.add_argument("--max-repeats", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="batch 64 only, 0.4 s per process "
                   "(unless --batches or --budget say otherwise)")
    p.add_argument("--no-numpy", action="store_true", help="skip the plain-NumPy CNN")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    p.add_argument("--no-ops", action="store_true", help="skip the per-operation extra")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory extra")
    p.add_argument("--memory-steps", type=int, default=300,
                   help="training steps of each peak-memory run (default 300, batch 64)")
    p.add_argument("--same-process", action="store_true", help="extra: also time all three in "
                   "one process, steps interleaved (how this script used to measure)")
    p.add_argument("--json", metavar="PATH", help="write every step time and the summary as JSON")
    p.add_argument("--report-from", metavar="PATH", help="print the report of a run saved with "
                   "--json again (measures nothing)")
    args = p.parse_args(argv)
    if args.batches is None:
        args.batches = "64" if args.quick else "1,64,256"
    if args.budget is None:
        args.budget = 0.4 if args.quick else 1.0
    args.nets = [n for n in args.nets.split(",") if n]
    try:
        args.batches = [int(b) for b in args.batches.split(",") if b]
    except ValueError:
        p.error(f"--batches must be comma-separated integers, got {args.batches!r}")
    if args.rounds < 1:
        p.error(f"--rounds must be at least 1, got {args.rounds}")
    for n in args.nets:
        if n not in NETS:
            p.error(f"unknown network {n!r} in --nets; choose from {', '.join(NETS)}")
    if not args.nets or not args.batches or min(args.batches) < 1:
        p.error("--nets and --batches need at least one network and positive batch sizes")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be at least 1, got {args.threads}")
    if args.budget <= 0 or args.warmup < 0 or args.min_repeats < 1:
        p.error(f"--budget and --min-repeats must be positive, --warmup at least 0; got "
                f"{args.budget}, {args.min_repeats}, {args.warmup}")
    if args.max_repeats < args.min_repeats:
        p.error(f"--max-repeats ({args.max_repeats}) must be at least --min-repeats "
                f"({args.min_repeats})")
    if args.json and not os.path.isdir(os.path.dirname(os.path.abspath(args.json))):
        p.error(f"--json: no folder {os.path.dirname(os.path.abspath(args.json))!r}")
    args.frameworks = [fw for fw in ORDER if not (fw == "numpy" and args.no_numpy)
                       and not (fw == "torch" and args.no_torch)]
    return args


def child_env(threads):
    """The children's environment: this process's own, plus the thread count if one was given."""
    env = dict(os.environ)
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS})
    return env


def run_child(job, env):
    """Run one compare_child.py job in a fresh interpreter; its JSON answer."""
    done = subprocess.run([sys.executable, CHILD, json.dumps(job)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        what = ", ".join(f"{k}={job[k]}" for k in ("task", "framework", "net", "batch", "mode")
                         if k in job)
        raise SystemExit(f"compare.py: the child process ({what}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def progress(message):
    print(message, file=sys.stderr, flush=True)


def rotated(order, r):
    return list(order[r % len(order):]) + list(order[:r % len(order)])


# --- before timing: the same function in every framework ---------------------------------

def check_agreement(args, base, env):
    """Each framework's logits and losses on one batch from the shared weights; exits (nothing
    timed) if a framework disagrees with minicnn. Returns {framework: what its process said}."""
    said = {}
    for net in args.nets:
        answers = {fw: run_child(dict(base, task="check", framework=fw, net=net), env)
                   for fw in args.frameworks}
        ours = answers["minicnn"]
        for fw, a in answers.items():
            scale = max(1.0, max(abs(v) for v in ours["logits"]))
            logit_gap = max(abs(u - v) for u, v in zip(a["logits"], ours["logits"])) / scale
            loss_gap = max(abs(u - v) / max(1.0, abs(v))
                           for u, v in zip(a["losses"], ours["losses"]))
            if logit_gap > 1e-4 or loss_gap > 1e-4:
                raise SystemExit(
                    f"compare.py: {report.NAMES[fw]} and minicnn disagree on {net} from the same "
                    f"weights (losses of three training steps {a['losses']} vs {ours['losses']}, "
                    f"relative logit gap {logit_gap:.2g}): the networks are not twins, so "
                    "nothing is timed")
            progress(f"check {net} {fw}: losses {', '.join(f'{v:.6f}' for v in a['losses'])} "
                     f"(relative gaps to minicnn: losses {loss_gap:.1e}, logits {logit_gap:.1e})")
            said.setdefault(fw, a)
    return said


# --- the measurements ----------------------------------------------------------------------

def timed_rows(args, base, env, macs, peak, loads):
    rows = [{"net": net, "batch": batch, "mode": mode,
             "gflop_per_step": report.gflop_per_step(macs[net]["macs_per_image"], batch, mode),
             "times_ms": {fw: [] for fw in args.frameworks}}
            for net in args.nets for batch in args.batches for mode in ("train", "infer")]
    for r in range(args.rounds):
        order = rotated(args.frameworks, r)
        loads.append(os.getloadavg()[0])
        for row in rows:
            for fw in order:
                job = dict(base, task="rows", framework=fw, net=row["net"], batch=row["batch"],
                           mode=row["mode"])
                times = run_child(job, env)["times_ms"]
                row["times_ms"][fw].append(times)
                progress(f"round {r + 1}/{args.rounds} {row['net']} {row['batch']} "
                         f"{row['mode']} {fw}: {report.ms(sorted(times)[len(times) // 2])} ms "
                         f"median of {len(times)}")
    return [report.summarise_row(row, peak.get("gflops")) for row in rows]


def op_rows(args, base, env):
    """{op: {framework: [per-round times]}}: each framework alone, rounds alternating."""
    ops = {}
    for r in range(args.rounds):
        for fw in rotated(args.frameworks, r):
            job = dict(base, task="ops", framework=fw, nets=args.nets, budget=args.budget / 4)
            for op in run_child(job, env)["ops"]:
                ops.setdefault(op["op"], {f: [] for f in args.frameworks})[fw].append(
                    op.get("times_ms"))
            progress(f"ops round {r + 1}/{args.rounds} {fw}: done")
    return ops


def memory_rows(args, base, env):
    rows = []
    for fw in args.frameworks:
        job = dict(base, task="memory", framework=fw, net="lenet5", steps=args.memory_steps)
        rows.append(dict(run_child(job, env), framework=fw))
        progress(f"memory {fw}: {rows[-1]['peak_mb']:.0f} MB")
    return rows


def same_process_rows(args, base, env):
    rows = [[n, b, m] for n in args.nets for b in args.batches for m in ("train", "infer")]
    job = dict(base, task="same_process", frameworks=args.frameworks, rows=rows)
    progress("same-process extra: one process, all frameworks interleaved ...")
    return run_child(job, env)["rows"]


# --- the report ------------------------------------------------------------------------------

def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    simd = next((f for f in ("avx512f", "avx2", "avx", "sse4_2") if f in flags), "no AVX")
    return f"{name} ({os.cpu_count()} logical CPUs, {simd})"


def git_commit():
    def git(*cmd):
        return subprocess.run(["git", "-C", HERE, *cmd], capture_output=True, text=True)
    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "not a git checkout"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def threads_line(args, said, run):
    if args.threads is not None:
        how = (f"{args.threads} for every framework: compare.py put {args.threads} in "
               f"{', '.join(THREAD_VARS)} of every child's environment")
    else:
        how = "each framework's own default (compare.py set no variable)"
    used = [f"minicnn {said['minicnn']['info']['threads']}"]
    if "torch" in said:
        used.append(f"PyTorch {said['torch']['info']['threads']}")
    pools = said.get("numpy", said["minicnn"])["info"]["pools"] or []
    blas = [p for p in pools if p["internal_api"] in ("openblas", "mkl", "blis")]
    if blas:
        b = blas[0]
        used.append(f"NumPy's {b['internal_api']} {b['version']} ({b['architecture']}) "
                    f"{b['num_threads']}")
    inherited = [f"{v}={value}" for v, value in run["environment"].items()]
    env = ("; the calling environment sets " + ", ".join(inherited)) if inherited else \
        "; the calling environment sets none of " + ", ".join(WATCHED_VARS)
    return f"threads: {how}; in use: {', '.join(used)}{env}"


def header(args, said, peak, run):
    info = said["minicnn"]["info"]
    versions = [f"Python {info['python']}", f"NumPy {info['numpy']}",
                f"minicnn {info['minicnn']} (commit {run['commit']})"]
    if "torch" in said:
        versions.insert(2, f"PyTorch {said['torch']['info']['torch']}")
    command = "python " + " ".join(shlex.quote(a) for a in run["argv"])
    if "gflops" in peak:
        peak_line = (f"FMA peak {peak['gflops']:.0f} GFLOP/s float32 on "
                     f"{plural(peak['threads'], 'thread')} ({peak['lanes']}-lane vectors, "
                     "per thread CPU-second; "
                     f"{peak['gflops_wall']:.0f} by the wall clock), `{peak['compiler']}`")
    else:
        peak_line = peak["error"]
    return "\n".join([
        f"**{run['started']}**, `{command}`", "",
        f"- CPU: {run['cpu']}", f"- {threads_line(args, said, run)}",
        f"- {', '.join(versions)}", f"- {peak_line}",
        f"- load average of the machine (1 min) {run['load'][0]:.1f} at the start, "
        f"{run['load'][1]:.1f} at the end",
        f"- {plural(args.rounds, 'round')} of one fresh process per framework and row, "
        f"{args.budget:g} s of steps each after {args.warmup} warm-up steps, "
        "8 distinct random batches in turn"])


def print_report(args, said, peak, rows, extras, run):
    fws = args.frameworks
    out = [header(args, said, peak, run), "",
           "Step times in ms over all steps of all rounds: median (min-max), max/median, "
           "95th percentile/median. "
           "x peer = peer median / minicnn median (above 1: minicnn is faster; below 1 in bold).",
           "", report.main_table(rows, fws), "",
           "Median of each round (noise check" + ("; the host's load average as each round "
           "began: " + " / ".join(f"{v:.1f}" for v in run["round_loads"]) if run["round_loads"]
                                                   else "") + "):", "",
           report.rounds_table(rows, fws), "",
           "Spread within one process, step counts matched: each round's first k steps of "
           "both frameworks, k the fewer either took; the median over rounds (bold: minicnn "
           "wider):", "", report.spread_table(rows, fws), "",
           f"GFLOP/s: 2 FLOPs per multiply-accumulate of the forward pass (minicnn's per-layer "
           f"counts, as model.summary gives them), a training step {report.TRAIN_FACTOR}x the "
           "forward; pooling, activations, loss and optimizer not counted. Winograd and other "
           "fast algorithms do fewer multiplications, so a rate can exceed the FMA peak.", "",
           report.gflops_table(rows, fws, peak.get("gflops"))]
    if "ops" in extras:
        out += ["", "### Extra: per operation, batch 64, each framework in its own process",
                "", "A layer's backward includes its input gradient; all rounds' steps pooled.",
                "", report.ops_table(extras["ops"], fws)]
    if "memory" in extras:
        out += ["", f"### Extra: peak memory, LeNet-5, {args.memory_steps} training steps of 64 "
                "from an MNIST-sized uint8 set, one fresh process per framework", "",
                report.memory_table(extras["memory"])]
    if "same_process" in extras:
        out += ["", "### Extra: all frameworks in one process, steps interleaved (the old way)",
                "", "Imported NumPy, minicnn, PyTorch in that order: the PyTorch and NumPy "
                "columns run under whatever importing minicnn changed.", "",
                report.same_process_table(extras["same_process"], fws)]
    print("\n".join(out), flush=True)


def reprint(path):
    """Print the report of a run saved with --json again, from its step times (nothing runs)."""
    try:
        with open(path) as f:
            saved = json.load(f)
        run = saved["run"]
    except (OSError, ValueError, KeyError) as e:      # a user's mistake: one line, exit 2
        print(f"compare.py: error: --report-from {path}: not a compare.py --json file ({e})",
              file=sys.stderr)
        raise SystemExit(2) from None
    args = parse_args(run["argv"][1:])
    args.frameworks = [fw for fw in ORDER if fw in saved["rows"][0]["times_ms"]]
    rows = [report.summarise_row(row, saved["peak"].get("gflops")) for row in saved["rows"]]
    extras = {k: saved[k] for k in ("ops", "memory", "same_process") if k in saved}
    print_report(args, saved["frameworks"], saved["peak"], rows, extras, run)


def main(argv=None):
    args = parse_args(argv)
    if args.report_from:
        return reprint(args.report_from)
    if "torch" in args.frameworks and importlib.util.find_spec("torch") is None:
        progress("PyTorch is not installed: its columns are skipped (pip install torch)")
        args.frameworks.remove("torch")
    env = child_env(args.threads)
    run = {"argv": sys.argv, "started": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(),
           "commit": git_commit(), "load": [os.getloadavg()[0]], "round_loads": [],
           "environment": {v: os.environ[v] for v in WATCHED_VARS if v in os.environ}}
    with tempfile.TemporaryDirectory(prefix="minicnn-compare-") as tmp:
        base = {"dir": tmp, "warmup": args.warmup, "budget": args.budget,
                "min_repeats": args.min_repeats, "max_repeats": args.max_repeats}
        macs = run_child(dict(base, task="prepare", nets=args.nets,
                              torch="torch" in args.frameworks), env)
        said = check_agreement(args, base, env)
        peak = compare_peak.measure(env)
        progress(f"FMA peak: {peak}")
        rows = timed_rows(args, base, env, macs, peak, run["round_loads"])
        extras = {}
        if not args.no_ops:
            extras["ops"] = op_rows(args, base, env)
        if not args.no_memory:
            extras["memory"] = memory_rows(args, base, env)
        if args.same_process:
            extras["same_process"] = same_process_rows(args, base, env)
    run["load"].append(os.getloadavg()[0])
    print_report(args, said, peak, rows, extras, run)
    if args.json:
        result = {"run": run, "threads": args.threads, "frameworks": said, "peak": peak,
                  "macs": macs, "rows": rows, **extras}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        progress(f"wrote {args.json}")


if __name__ == "__main__":
    main()
