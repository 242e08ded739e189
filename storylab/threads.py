"""How many CPU threads torch uses for one operation (intra-op parallelism), set once per process.

The ``storylab`` command calls :func:`use_threads` before any command runs, with the value of its
global ``--threads`` option (or the ``STORYLAB_THREADS`` environment variable); without either it
keeps ``OMP_NUM_THREADS`` when that is set and otherwise uses :func:`physical_cores`. Hyper-threads
are not counted (two threads on one core share its arithmetic units), as in torch's own default.

Data-loader worker processes run one thread each: PyTorch's worker loop calls
``torch.set_num_threads(1)`` in every worker, whatever the parent set.

Nothing here imports torch (``storylab --help`` and the torch-free commands stay fast): when torch
is loaded, :func:`torch.set_num_threads` is called at once, otherwise right after ``import torch``
finishes (an import hook on :data:`sys.meta_path`). ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` are
set too, for child processes. The variables alone would not do in this process: a torch loaded
with ``OMP_NUM_THREADS=3`` on a 2-CPU machine runs 2 threads, where ``torch.set_num_threads(3)`` gives 3.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Mapping, Sequence

from storylab.errors import StorylabError

SYSFS_CPU = Path("/sys/devices/system/cpu")
MAX_THREADS = 1024


def physical_cores(cpus: Iterable[int] | None = None, sysfs: Path = SYSFS_CPU) -> int:
    """Physical cores among the CPUs this process may run on (its affinity mask), each core counted once.

    A logical CPU's core is the pair (``physical_package_id``, ``core_id``) of Linux's sysfs topology;
    a CPU whose topology cannot be read counts as a core of its own (so the answer is never 0).
    """
    if cpus is None:
        try:
            cpus = os.sched_getaffinity(0)
        except AttributeError:  # not Linux
            cpus = range(os.cpu_count() or 1)
    cores: set[tuple[str, str]] = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def default_threads(environ: Mapping[str, str] | None = None) -> tuple[int, str]:
    """The thread count without ``--threads`` / ``STORYLAB_THREADS``, and where it comes from.

    ``OMP_NUM_THREADS`` when it is set (torch honours it too), else :func:`physical_cores`.
    """
    environ = os.environ if environ is None else environ
    text = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # OpenMP allows a list per nesting level
    if text:
        return parse_threads(text, "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    return physical_cores(), "physical cores"


def parse_threads(text: str, name: str) -> int:
    """A thread count read from the variable ``name``: an integer from 1 to :data:`MAX_THREADS`."""
    try:
        value = int(text)
    except ValueError:
        raise StorylabError(f"{name} must be a whole number of threads (1-{MAX_THREADS}), got {text!r}") from None
    if not 1 <= value <= MAX_THREADS:
        raise StorylabError(f"{name} must be a whole number of threads (1-{MAX_THREADS}), got {value}")
    return value


def use_threads(threads: int | None) -> int:
    """Make torch use ``threads`` intra-op threads in this process (None: :func:`default_threads`); return the count.

    An explicit count also resets a torch that is already loaded; the default only fills
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` for a torch still to load (a loaded torch chose the
    same default itself: ``OMP_NUM_THREADS``, else the physical cores), so a program that embeds the
    CLI keeps the count it set.
    """
    if threads is None:
        count = default_threads()[0]
        os.environ.setdefault("OMP_NUM_THREADS", str(count))
        os.environ.setdefault("MKL_NUM_THREADS", str(count))
        return count
    if not 1 <= threads <= MAX_THREADS:
        raise StorylabError(f"--threads must be from 1 to {MAX_THREADS}, got {threads}")
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    for hook in [h for h in sys.meta_path if isinstance(h, _ThreadsWhenTorchLoads)]:
        sys.meta_path.remove(hook)  # the last setting wins
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(threads)
    else:
        sys.meta_path.insert(0, _ThreadsWhenTorchLoads(threads))
    return threads


class _ThreadsWhenTorchLoads(importlib.abc.MetaPathFinder):
    """Calls ``torch.set_num_threads(count)`` once ``import torch`` has run, then removes itself."""

    def __init__(self, count: int) -> None:
        self.count = count

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)  # the other finders, in order (this one is gone)
        if spec is None or spec.loader is None:
            return spec
        execute, count = spec.loader.exec_module, self.count

        def exec_module(module: ModuleType) -> None:
            execute(module)
            module.set_num_threads(count)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec
