"""benchmarks/: the peers compute minicnn's function, and compare.py's processes stay apart.

The benchmark's ratios mean something only if the plain-NumPy CNN (built from net_spec's
plain description) and the PyTorch twin (made by minicnn.interop, saved whole) compute what
the minicnn network computes, and if a peer's process never imports minicnn (whose import
could change its speed).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minicnn.architectures import ARCHITECTURES, build

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import compare  # noqa: E402
import compare_report  # noqa: E402
import net_spec  # noqa: E402
import numpy_reference  # noqa: E402
import step_stalls  # noqa: E402


def batch(n=3, seed=5):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_numpy_peer_from_spec_matches_minicnn(arch):
    model = build(arch, rng=np.random.default_rng(0))
    spec, weights = net_spec.describe(model)
    json.dumps(spec)                                   # plain data: crosses a process boundary
    peer = numpy_reference.from_spec(spec, weights)
    x, _ = batch()
    ours = model.forward(x, training=False)
    np.testing.assert_allclose(peer.forward(x), ours, rtol=1e-4, atol=1e-4 * abs(ours).max())
    assert sum(d["macs"] for d in spec) == model.summary((1, 28, 28), print_fn=None).total_macs


def test_torch_child_loads_the_twin_interop_made_and_never_imports_minicnn(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch)")
    env = dict(os.environ)
    base = {"dir": str(tmp_path), "warmup": 1, "budget": 0.01, "min_repeats": 2,
            "max_repeats": 2}
    compare.run_child(dict(base, task="prepare", nets=["dwsep"], torch=True), env)
    x, _ = batch()
    twin = torch.load(tmp_path / "dwsep.pt", weights_only=False)
    model = build("dwsep", rng=np.random.default_rng(0))
    assert len(twin) == len(model)                      # compare_ops: module i is layer i
    ours = model.forward(x, training=False)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4 * abs(ours).max())
    # the child's own guard fails the process if loading the twin imported minicnn
    said = {fw: compare.run_child(dict(base, task="check", framework=fw, net="dwsep"), env)
            for fw in ("minicnn", "torch")}
    np.testing.assert_allclose(said["torch"]["losses"], said["minicnn"]["losses"], rtol=1e-5)


def test_numpy_child_agrees_and_never_imports_minicnn(tmp_path):
    """The child's own guard fails the process if minicnn got imported into a peer's process."""
    env = dict(os.environ)
    base = {"dir": str(tmp_path), "warmup": 1, "budget": 0.01, "min_repeats": 2,
            "max_repeats": 2}
    compare.run_child(dict(base, task="prepare", nets=["lenet5"]), env)
    said = {fw: compare.run_child(dict(base, task="check", framework=fw, net="lenet5"), env)
            for fw in ("minicnn", "numpy")}
    np.testing.assert_allclose(said["numpy"]["losses"], said["minicnn"]["losses"], rtol=1e-5)
    assert said["minicnn"]["losses"][2] < said["minicnn"]["losses"][0] - 0.1   # the steps train
    rows = compare.run_child(dict(base, task="rows", framework="numpy", net="lenet5", batch=2,
                                  mode="train"), env)
    assert len(rows["times_ms"]) == 2 and min(rows["times_ms"]) > 0 and "switches" not in rows
    rows = compare.run_child(dict(base, task="rows", framework="minicnn", net="lenet5",
                                  batch=2, mode="infer", switches=True), env)
    assert len(rows["switches"]) == len(rows["times_ms"]) == 2
    assert all(isinstance(s, int) and s >= 0 for s in rows["switches"])
    with pytest.raises(SystemExit, match="the numpy process imported minicnn"):  # the guard
        compare.run_child(dict(base, task="prepare", nets=["lenet5"], framework="numpy"), env)


def test_stats_and_ratios():
    row = {"gflop_per_step": 0.5, "times_ms": {"minicnn": [[1, 2, 9], [2]],
                                                "torch": [[4, 4], [5, 3]]}}
    compare_report.summarise_row(row, peak_gflops=1000)
    s = row["stats"]["minicnn"]
    assert (s["median_ms"], s["min_ms"], s["max_ms"], s["n"]) == (2, 1, 9, 4)
    assert s["spread"] == 4.5 and s["p95_spread"] == 4.5 and s["round_medians_ms"] == [2, 2]
    assert row["ratios"] == {"torch": 2.0}                       # 4 ms / 2 ms: minicnn faster
    assert s["gflops"] == pytest.approx(250) and s["percent_of_peak"] == pytest.approx(25)
    assert compare_report.gflop_per_step(1e6, 10, "train") == pytest.approx(0.06)


def test_matched_spread_cuts_each_round_to_the_shorter_count():
    # round 1: minicnn took 5 steps, the peer 3, so only minicnn's first 3 count (the 9 ms
    # stalls after them are left out): max/median 2/1, excess 1 ms; round 2: the peer took
    # 2, so minicnn's [2, 2] count and its 6 ms step does not: 1.0 and 0 ms
    ours, theirs = [[1, 1, 2, 9, 9], [2, 2, 6]], [[4, 4, 6], [3, 6]]
    assert compare_report.matched_spread(ours, theirs) == (1.5, 1.5, 0.5)
    # the peer's own: round 1 all 3 steps (max 6 / median 4), round 2 both (6 / 4.5)
    a, p95, excess = compare_report.matched_spread(theirs, ours)
    assert a == pytest.approx((1.5 + 6 / 4.5) / 2) and excess == pytest.approx(1.75)
    assert compare_report.matched_spread([[]], [[1]]) is None
    table = compare_report.spread_table(
        [{"net": "lenet5", "batch": 1, "mode": "train",
          "times_ms": {"minicnn": ours, "torch": theirs}}], ["minicnn", "torch"])
    assert "| lenet5 | 1 | train | **1.50 vs 1.42** | 1.50 vs 1.42 | 0.500 vs 1.75 | 2 |" in table


@pytest.mark.parametrize("script", ["compare.py", "step_stalls.py"])
@pytest.mark.parametrize("argv", [["--nets", "resnet"], ["--threads", "0"], ["--batches", "a"],
                                  ["--rounds", "0"]])
def test_bad_arguments_are_one_line_exit_2(script, argv):
    done = subprocess.run([sys.executable, os.path.join(BENCH, script), *argv],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"{script}: error: ") and argv[0] in done.stderr


def test_step_stalls_counts_slow_steps_and_their_switches():
    # round 1: median 2, so 3 and 9 are slow (over 1.3x), one of them with a switch; the
    # other steps had one switch among three; round 2: nothing slow
    runs = [{"times_ms": [1, 2, 2, 3, 9], "switches": [0, 1, 0, 2, 0]},
            {"times_ms": [4, 4], "switches": [0, 0]}]
    s = step_stalls.summarise(runs, 100.0)
    assert (s["steps"], s["slow"], s["slow_switched"], s["stalled"]) == (7, 2, 0.5, 0)
    assert s["other_switched"] == pytest.approx(1 / 5) and s["spread"] == pytest.approx(2.75)
    assert s["switches_a_step"] == pytest.approx(3 / 7)
    # stalls of the same ms: 0.3 x the longer median of the two frameworks (4 ms) = 1.2 ms,
    # so only the 9 ms step (7 ms over its median of 2) counts; the 3 ms one (+1) does not
    per = {"minicnn": runs, "torch": runs[1:]}
    assert step_stalls.common_stall_ms(per) == pytest.approx(1.2)
    assert step_stalls.summarise(runs, 1.2)["stalled"] == 1
    table = step_stalls.table({("lenet5", 64, "train"): per})
    assert "| lenet5 | 64 | train | minicnn | 7 | 2.75 | 2 | 50% | 20% | 0.43 | 1 (14.3%, +1.20) |" \
        in table
    assert "| lenet5 | 64 | train | PyTorch | 2 | 1.00 | 0 | - | 0% | 0.00 | 0 (0.0%, +1.20) |" \
        in table


def test_report_from_saved_json(tmp_path, capsys):
    info = {"python": "3.11", "numpy": "2.4", "minicnn": "0.1", "threads": 2, "pools": None}
    saved = {"run": {"argv": ["compare.py", "--nets", "lenet5", "--batches", "2", "--rounds", "2"],
                     "started": "2026-01-01 00:00", "cpu": "a CPU", "commit": "abc1234",
                     "load": [0.5, 0.7], "round_loads": [0.5, 0.6], "environment": {}},
             "threads": None, "frameworks": {"minicnn": {"info": info}, "numpy": {"info": info}},
             "peak": {"error": "no C compiler (cc) found"}, "macs": {},
             "rows": [{"net": "lenet5", "batch": 2, "mode": "train", "gflop_per_step": 0.002,
                       "times_ms": {"minicnn": [[1.0, 1.2], [1.1]], "numpy": [[3.0, 3.3], [3.1]]}}]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(saved))
    compare.main(["--report-from", str(path)])
    out = capsys.readouterr().out
    assert "`python compare.py --nets lenet5 --batches 2 --rounds 2`" in out
    assert "| lenet5 | 2 | train | 1.10 (1.00-1.20), 1.09, 1.09 | 3.10 (3.00-3.30)" in out
    assert "| 2.82x |" in out and "no C compiler" in out and "0.5 / 0.6" in out
    with pytest.raises(SystemExit) as e:
        compare.main(["--report-from", str(tmp_path / "missing.json")])
    assert e.value.code == 2
