"""The machine's float32 FMA peak, for compare.py's "percent of peak" columns.

A tiny C program is compiled at run time (``cc -O3 -march=native -fopenmp``) in a temporary
folder: every OpenMP thread runs CHAINS independent chains ``c = c * a + b`` on the widest
float32 vectors the compiler targets (AVX-512, AVX or SSE), so no FMA waits for another,
counting 2 FLOPs per lane per FMA. The peak is each thread's FLOPs over that thread's own CPU
time, summed over the threads (best of several repeats): another process on a shared core
stretches the wall time, not a thread's rate while it runs. (Two threads on one physical
core share its FMA units and each runs at half rate, so the sum stays right there too.) The
wall-clock rate is reported beside it. It runs with the environment
compare.py gives the frameworks, so on the same thread count (OpenMP's default: every core,
unless ``--threads`` set OMP_NUM_THREADS). No compiler or no OpenMP: it says so, and the
percentages are left out.
"""
import os
import shutil
import subprocess
import tempfile

SOURCE = r"""
#define _POSIX_C_SOURCE 199309L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
#define CHAINS 12
typedef float vf __attribute__((vector_size(LANES * 4)));

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv) {
    long iters = atol(argv[1]);
    int repeats = atoi(argv[2]);
    float a0 = (float)atof(argv[3]), b0 = (float)atof(argv[4]);   /* unknown to the compiler */
    double flops = 2.0 * CHAINS * LANES * (double)iters;          /* per thread */
    double best_wall = 0.0, best_cpu = 0.0;
    int threads = 1;
    float sink = 0.0f;
    for (int rep = 0; rep < repeats; rep++) {
        double rate_cpu = 0.0, t0 = omp_get_wtime();
        #pragma omp parallel reduction(+:sink, rate_cpu)
        {
            vf a, b, c[CHAINS];
            for (int l = 0; l < LANES; l++) { a[l] = a0; b[l] = b0; }
            for (int k = 0; k < CHAINS; k++)
                for (int l = 0; l < LANES; l++) c[k][l] = 0.001f * (k + l);
            double c0 = thread_seconds();
            for (long i = 0; i < iters; i++) {
                #pragma GCC unroll 12
                for (int k = 0; k < CHAINS; k++) c[k] = c[k] * a + b;
            }
            rate_cpu += flops / (thread_seconds() - c0);
            for (int k = 0; k < CHAINS; k++)
                for (int l = 0; l < LANES; l++) sink += c[k][l];
            #pragma omp master
            threads = omp_get_num_threads();
        }
        double wall = flops * threads / (omp_get_wtime() - t0);
        if (wall > best_wall) best_wall = wall;
        if (rate_cpu > best_cpu) best_cpu = rate_cpu;
    }
    printf("%d %d %.3f %.3f %g\n", threads, LANES, best_cpu / 1e9, best_wall / 1e9, sink);
    return 0;
}
"""


def measure(env=None, iters=30_000_000, repeats=7):
    """{"gflops", "threads", "lanes", "compiler"} or {"error": why it was skipped}."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return {"error": "no C compiler (cc) found: the FMA peak and percent of peak are skipped"}
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "fma_peak.c"), os.path.join(tmp, "fma_peak")
        with open(src, "w") as f:
            f.write(SOURCE)
        cmd = [cc, "-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", src, "-o", exe]
        built = subprocess.run(cmd, capture_output=True, text=True)
        if built.returncode != 0:
            why = (built.stderr.strip().splitlines() or ["?"])[-1]
            return {"error": f"`{' '.join(cmd[:-3])} ...` failed ({why}): FMA peak skipped"}
        ran = subprocess.run([exe, str(iters), str(repeats), "0.9999", "1e-4"],
                             capture_output=True, text=True, env=env)
        if ran.returncode != 0:
            return {"error": f"the FMA peak program failed: {ran.stderr.strip()[-200:]}"}
        threads, lanes, per_cpu_second, per_wall_second, _ = ran.stdout.split()
    return {"gflops": float(per_cpu_second), "gflops_wall": float(per_wall_second),
            "threads": int(threads), "lanes": int(lanes),
            "compiler": " ".join(cmd[:5] + ["fma_peak.c"])}


if __name__ == "__main__":
    print(measure())
