"""Run Python code in a child process, for tests of what could crash the interpreter (a
segfault in a kernel, memory blown by a crafted file): a signal death or a peak memory
over budget fails the test instead of taking pytest down with it."""
import os
import signal
import subprocess
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
#: prints the child's peak resident memory (VmHWM, kB) as its last line
PEAK_RSS = """
def _peak_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
print("PEAK_KB", _peak_kb())
"""


def run_python(code, timeout=900, env=None, args=()):
    """Run ``code`` with this interpreter (tests/ on the path); returns the CompletedProcess."""
    return _run(["-c", code, *args], timeout, env)


def run_script(name, *args, timeout=900, env=None):
    """Run the file ``name`` of tests/ with this interpreter; returns the CompletedProcess."""
    return _run([os.path.join(TESTS, name), *args], timeout, env)


def _run(argv, timeout, env):
    full_env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    # run from tests/, not the checkout: '-c' puts the working folder first on sys.path,
    # and the checkout's minicnn/ has no compiled kernels when the package was installed
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=TESTS)


def check_alive(proc):
    """Fail (AssertionError) when the child died of a signal, naming it."""
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise AssertionError(f"the child process died of {name}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return proc


def peak_kb(proc):
    """The VmHWM the child printed with PEAK_RSS (kB)."""
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK_KB ")]
    if not lines:
        raise AssertionError(f"no PEAK_KB line: the child failed?\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr[-4000:]}")
    return int(lines[-1].split()[1])
