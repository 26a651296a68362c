"""minicnn's GEMM kernels beside NumPy's matmul on the products the networks really make.

    python tools/gemm_shapes.py [--arch lenet5,convnet,dwsep] [--batch-size 64]

One training step of each network records every call to ``minicnn.gemm.matmul`` (shapes
and strides: the weight gradient multiplies by a transposed view, the input gradient by a
transposed weight). Each product is then timed with every kernel this machine has and
with NumPy's matmul (OpenBLAS), interleaved in this process, the same threads for all;
the table gives medians, GFLOP/s and the ratio NumPy / kernel (above 1: the kernel is
faster), with the largest error against a float64 product.
"""
import argparse
import statistics
import time


def record(arch, batch):
    """The (a, b, out, threads) of every GEMM one training step of ``arch`` makes."""
    import numpy as np
    import minicnn
    from minicnn import gemm
    from minicnn.architectures import build

    calls = []
    real = gemm.matmul

    def keep(x):
        """A copy of x laid out like x: a transposed view stays a transposed view."""
        if x.strides[-2] < x.strides[-1]:
            return np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
        return x.copy()

    def spy(a, b, out, num_threads=1):
        if a.dtype == np.float32:
            calls.append((keep(a), keep(b), out.shape, num_threads))
        return real(a, b, out, num_threads)

    gemm.matmul = spy
    try:
        model = build(arch, rng=np.random.default_rng(0))
        rng = np.random.default_rng(1)
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        loss = minicnn.SoftmaxCrossEntropy()
        loss.forward(model.forward(x, training=True), y)
        model.backward(loss.backward(), input_grad=False)
    finally:
        gemm.matmul = real
    return calls


def time_interleaved(fns, repeats):
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="lenet5,convnet,dwsep")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=21)
    args = p.parse_args(argv)

    import numpy as np
    import minicnn
    from minicnn import gemm, info

    kernels = gemm.available()
    chosen = gemm.kernel_name()
    print(f"threads={minicnn.get_num_threads()} kernels={','.join(kernels) or 'none'} "
          f"blas_core={info.blas_core()} batch={args.batch_size}")
    head = f"{'product (M x K x N, a / b layout)':44s} {'numpy ms':>9s}"
    for k in kernels:
        head += f" {k + ' ms':>10s} {'GF/s':>5s} {'x':>5s}"
    print(head + "  max rel err")
    totals = [0.0] * (1 + len(kernels))
    for arch in args.arch.split(","):
        for a, b, shape, threads in record(arch, args.batch_size):
            m, k = a.shape[-2:]
            n = b.shape[-1]
            lay = lambda x: "T" if x.strides[-2] < x.strides[-1] else "N"  # noqa: E731
            label = f"{arch} {m} x {k} x {n} {lay(a)}{lay(b)}" + (f" g={a.shape[0]}" if a.ndim == 3 else "")
            out = np.empty(shape, np.float32)
            fns = [lambda: np.matmul(a, b, out=out)]
            for name in kernels:
                def run(name=name):
                    gemm.use(name)
                    gemm.matmul(a, b, out, threads)
                fns.append(run)
            med = time_interleaved(fns, args.repeats)
            ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
            errs = []
            for name in kernels:
                gemm.use(name)
                got = gemm.matmul(a, b, np.empty(shape, np.float32), threads)
                errs.append(float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)))
            gflop = 2 * (a.shape[0] if a.ndim == 3 else 1) * m * k * n / 1e9
            row = f"{label:44s} {med[0] * 1e3:9.3f}"
            for i in range(len(kernels)):
                row += f" {med[i + 1] * 1e3:10.3f} {gflop / med[i + 1]:5.0f} {med[0] / med[i + 1]:5.2f}"
            print(row + "  " + " ".join(f"{e:.1e}" for e in errs))
            totals = [t + x for t, x in zip(totals, med)]
    gemm.use(chosen)
    row = f"{'sum of medians':44s} {totals[0] * 1e3:9.3f}"
    for i in range(len(kernels)):
        row += f" {totals[i + 1] * 1e3:10.3f} {'':5s} {totals[0] / totals[i + 1]:5.2f}"
    print(row)


if __name__ == "__main__":
    main()
