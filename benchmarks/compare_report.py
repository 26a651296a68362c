"""compare.py's figures and markdown tables: medians, spreads, ratios, GFLOP/s.

Pure functions of the step times the child processes reported (milliseconds).
"""
import statistics

NAMES = {"minicnn": "minicnn", "numpy": "NumPy", "torch": "PyTorch"}
#: training counted as three forward passes (forward, input gradient, weight gradient)
TRAIN_FACTOR = 3


def percentile(sorted_values, q):
    """The q-th percentile (0-100) of sorted values, by the nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(q / 100 * len(sorted_values)))]


def stats(runs):
    """{median, min, max, spread (max/median), p95 spread, n, round medians} of a list of
    per-round lists of ms. The p95 spread is the bimodality a reader sees; the max also
    catches one-off stalls (a shared host descheduling the process, a paused VM)."""
    steps = sorted(t for run in runs for t in run)
    median = statistics.median(steps)
    return {"median_ms": median, "min_ms": steps[0], "max_ms": steps[-1],
            "spread": steps[-1] / median, "p95_spread": percentile(steps, 95) / median,
            "n": len(steps),
            "round_medians_ms": [statistics.median(run) for run in runs]}


def gflop_per_step(macs_per_image, batch, mode):
    """2 FLOPs per multiply-accumulate of the forward pass; a training step TRAIN_FACTOR times
    that (the usual convention; pooling, activations, the loss and the optimizer not counted)."""
    return 2 * macs_per_image * batch * (TRAIN_FACTOR if mode == "train" else 1) / 1e9


def summarise_row(row, peak_gflops=None):
    """Adds "stats", "ratios" (peer median / minicnn median) and "gflops" to a row."""
    row["stats"] = {fw: stats(runs) for fw, runs in row["times_ms"].items()}
    ours = row["stats"]["minicnn"]["median_ms"]
    row["ratios"] = {fw: s["median_ms"] / ours for fw, s in row["stats"].items() if fw != "minicnn"}
    for s in row["stats"].values():
        s["gflops"] = row["gflop_per_step"] / (s["median_ms"] / 1e3)
        s["percent_of_peak"] = 100 * s["gflops"] / peak_gflops if peak_gflops else None
    return row


def ms(v):
    """Milliseconds to about three significant figures."""
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def spread(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def ratio(v):
    return f"{v:.2f}x" if v >= 0.1 else f"{v:.2g}x"


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _key(row):
    return [row["net"], row["batch"], row["mode"]]


def main_table(rows, frameworks):
    peers = [fw for fw in frameworks if fw != "minicnn"]
    head = (["net", "batch", "step"]
            + [f"{NAMES[fw]} ms: median (min-max), max/median, p95/median" for fw in frameworks]
            + [f"x {NAMES[fw]}" for fw in peers])
    body = []
    for row in rows:
        cells = []
        for fw in frameworks:
            s = row["stats"][fw]
            cells.append(f"{ms(s['median_ms'])} ({ms(s['min_ms'])}-{ms(s['max_ms'])}), "
                         f"{spread(s['spread'])}, {spread(s['p95_spread'])}")
        ratios = [f"**{ratio(row['ratios'][fw])}**" if row["ratios"][fw] < 1
                  else ratio(row["ratios"][fw]) for fw in peers]
        body.append(_key(row) + cells + ratios)
    return table(head, body)


def rounds_table(rows, frameworks):
    head = ["net", "batch", "step"] + [f"{NAMES[fw]} median ms per round" for fw in frameworks]
    body = [_key(row) + [" / ".join(ms(v) for v in row["stats"][fw]["round_medians_ms"])
                         for fw in frameworks] for row in rows]
    return table(head, body)


def matched_spread(runs, peer_runs):
    """max/median, p95/median and max - median (ms) of one framework's steps within each
    process (round), over its first k steps, k = the fewer steps either framework took in
    that round; the median over rounds of each. The maximum of more samples is larger by
    chance alone (a faster framework fits more steps in the same budget), and pooling rounds
    mixes their medians: matched counts within one process leave only the steps' own spread.
    The excess in ms is what a stall costs whatever the step's length: the same stall of the
    host is a larger ratio on a shorter step."""
    maxes, p95s, excess = [], [], []
    for run, peer in zip(runs, peer_runs):
        k = min(len(run), len(peer))
        if k == 0:
            continue
        steps = sorted(run[:k])
        median = statistics.median(steps)
        maxes.append(steps[-1] / median)
        p95s.append(percentile(steps, 95) / median)
        excess.append(steps[-1] - median)
    if not maxes:
        return None
    return statistics.median(maxes), statistics.median(p95s), statistics.median(excess)


def spread_table(rows, frameworks):
    """Each peer beside minicnn with step counts matched per round (``matched_spread``)."""
    peers = [fw for fw in frameworks if fw != "minicnn"]
    head = ["net", "batch", "step"]
    for fw in peers:
        head += [f"minicnn vs {NAMES[fw]}: max/median", "p95/median", "max - median ms",
                 "steps a round"]
    body = []
    for row in rows:
        cells = []
        for fw in peers:
            ours = row["times_ms"]["minicnn"]
            theirs = row["times_ms"][fw]
            a, b = matched_spread(ours, theirs), matched_spread(theirs, ours)
            if a is None or b is None:
                cells += ["-", "-", "-", "-"]
                continue
            k = statistics.median(min(len(x), len(y)) for x, y in zip(ours, theirs))
            wide = a[0] > b[0]
            cells += [("**" if wide else "") + f"{spread(a[0])} vs {spread(b[0])}"
                      + ("**" if wide else ""),
                      f"{spread(a[1])} vs {spread(b[1])}", f"{ms(a[2])} vs {ms(b[2])}",
                      f"{k:.0f}"]
        body.append(_key(row) + cells)
    return table(head, body)


def gflops_table(rows, frameworks, peak):
    unit = "GFLOP/s (% of peak)" if peak else "GFLOP/s"
    head = ["net", "batch", "step", "GFLOP a step"] + [f"{NAMES[fw]} {unit}" for fw in frameworks]
    body = []
    for row in rows:
        cells = []
        for fw in frameworks:
            s = row["stats"][fw]
            pct = s["percent_of_peak"]
            pct = "" if pct is None else f" ({pct:.1f}%)" if pct < 10 else f" ({pct:.0f}%)"
            cells.append(f"{s['gflops']:.1f}{pct}")
        body.append(_key(row) + [f"{row['gflop_per_step']:.4g}"] + cells)
    return table(head, body)


def ops_table(ops, frameworks):
    """ops: {op name: {framework: [per-round lists of ms]}} in the order they were measured."""
    peers = [fw for fw in frameworks if fw != "minicnn"]
    head = (["operation (batch 64)"] + [f"{NAMES[fw]} ms (min-max)" for fw in frameworks]
            + [f"x {NAMES[fw]}" for fw in peers])
    body = []
    for name, per_fw in ops.items():
        s = {fw: stats(runs) for fw, runs in per_fw.items() if runs and all(runs)}
        if not s:       # an operation no framework timed (a framework's placeholder entry)
            continue
        cells = [f"{ms(s[fw]['median_ms'])} ({ms(s[fw]['min_ms'])}-{ms(s[fw]['max_ms'])})"
                 if fw in s else "-" for fw in frameworks]
        ratios = [ratio(s[fw]["median_ms"] / s["minicnn"]["median_ms"])
                  if fw in s and "minicnn" in s else "-" for fw in peers]
        body.append([name] + cells + ratios)
    return table(head, body)


def same_process_table(rows, frameworks):
    peers = [fw for fw in frameworks if fw != "minicnn"]
    head = (["net", "batch", "step"] + [f"{NAMES[fw]} ms (min-max)" for fw in frameworks]
            + [f"x {NAMES[fw]}" for fw in peers])
    body = []
    for row in rows:
        s = {fw: stats([t]) for fw, t in row["times_ms"].items()}
        cells = [f"{ms(s[fw]['median_ms'])} ({ms(s[fw]['min_ms'])}-{ms(s[fw]['max_ms'])})"
                 for fw in frameworks]
        ratios = [ratio(s[fw]["median_ms"] / s["minicnn"]["median_ms"]) for fw in peers]
        body.append(_key(row) + cells + ratios)
    return table(head, body)


def memory_table(rows):
    body = [[NAMES[r["framework"]], f"{r['peak_mb']:.0f}", f"{r['seconds']:.1f}"] for r in rows]
    return table(["framework", "peak RSS MB", "seconds"], body)
