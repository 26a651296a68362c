"""Sweep the run-time settings: whole-step medians of profile_layers.py per setting.

    python benchmarks/thread_settings.py [--rounds 4] [--only SUBSTRING]

Each setting (an environment for the OpenMP runtime, OpenBLAS and malloc, and minicnn's
PARALLEL_MIN, the size under which a kernel runs on one thread; convolutions keep their own
floor, PARALLEL_MIN_MACS = 2**18 multiply-adds, in every setting) runs profile_layers.py in
a fresh process, because all three read their environment when they load. Settings
are interleaved round by round, so the machine's load drifts over all of them alike; the
table gives the median over rounds of each job's whole-step median (ms). This is how
minicnn's defaults (minicnn/_config.py, minicnn/_malloc.py, minicnn/functional.py) were
chosen. The environment is inherited otherwise: an OPENBLAS_CORETYPE set there stays,
except in the setting that removes it.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SETTINGS = {    # name: (changes to the environment, None removes a variable; log2 of PARALLEL_MIN)
    "sleep at once, 2**15": ({"GOMP_SPINCOUNT": "0"}, 15),
    "spin 300, 2**17": ({"GOMP_SPINCOUNT": "300"}, 17),
    "spin 1000, 2**17": ({"GOMP_SPINCOUNT": "1000"}, 17),
    "spin 3000, 2**15": ({"GOMP_SPINCOUNT": "3000"}, 15),
    "spin 3000, 2**16": ({"GOMP_SPINCOUNT": "3000"}, 16),
    "spin 3000, 2**17 (now)": ({"GOMP_SPINCOUNT": "3000"}, 17),
    "spin 3000, 2**18": ({"GOMP_SPINCOUNT": "3000"}, 18),
    "spin 10000, 2**17": ({"GOMP_SPINCOUNT": "10000"}, 17),
    "now, blas 2**17": ({"OPENBLAS_THREAD_TIMEOUT": "17"}, 17),
    "now, glibc's own malloc": ({"MINICNN_TUNE_MALLOC": "0"}, 17),
    "now, OpenBLAS picks kernels": ({"OPENBLAS_CORETYPE": None}, 17),
}
SWEPT = ("GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "MINICNN_TUNE_MALLOC")

JOBS = {
    "lenet5": ["--arch", "lenet5", "--steps", "200"],
    "dwsep": ["--arch", "dwsep", "--steps", "150"],
    "convnet": ["--arch", "convnet", "--steps", "60"],
    "lenet5 infer 256": ["--arch", "lenet5", "--inference", "--batch-size", "256", "--steps", "150"],
    "lenet5 batch 1": ["--arch", "lenet5", "--batch-size", "1", "--steps", "300"],
}

# runs profile_layers.main with PARALLEL_MIN set; minicnn first, as the script does
CHILD = ("import sys; import minicnn, minicnn.functional as F; F.PARALLEL_MIN = 1 << int(sys.argv[1]); "
         "sys.path.insert(0, sys.argv[2]); import profile_layers; profile_layers.main(sys.argv[3:])")


def whole_step(env, log2_min, args):
    out = subprocess.run([sys.executable, "-c", CHILD, str(log2_min), HERE] + args, env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(next(line for line in out.splitlines() if "whole step" in line).split()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--only", default="", help="run the settings whose name contains this")
    args = p.parse_args(argv)
    settings = {name: s for name, s in SETTINGS.items() if args.only in name or "(now)" in name}
    times = {}
    for r in range(args.rounds):
        for name, (changes, log2_min) in settings.items():
            env = {k: v for k, v in os.environ.items() if k not in SWEPT}
            env.update({k: v for k, v in changes.items() if v is not None})
            for k in [k for k, v in changes.items() if v is None]:
                env.pop(k, None)
            for job, job_args in JOBS.items():
                times.setdefault((name, job), []).append(whole_step(env, log2_min, job_args))
        print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
    width = max(map(len, settings)) + 2
    print("whole-step medians (ms); OMP_WAIT_POLICY as minicnn sets it unless in the environment; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')} from the environment")
    print(f"{'setting':{width}s}" + "".join(f"{job:>18s}" for job in JOBS))
    for name in settings:
        print(f"{name:{width}s}" + "".join(f"{statistics.median(times[(name, job)]):18.2f}"
                                            for job in JOBS))


if __name__ == "__main__":
    main()
