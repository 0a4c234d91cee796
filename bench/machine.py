"""What every benchmark records about where it ran, and how it measures a process's CPU time.

Each ``emowatch bench ...`` JSON has a ``machine`` object written by :func:`machine_info`:
CPU model and clock (``/proc/cpuinfo``), core count, memory, OS, Python and the versions of
the libraries that bench exercises (``libraries``), plus the bench's own extras (device,
torch threads, load average ...). Standard library only: no benchmark dependency is
imported to read its version.
"""
from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["cpu_clock_mhz", "cpu_model", "library_versions", "machine_info", "process_cpu_seconds"]

#: distributions whose versions a bench records unless it names its own
COMMON_LIBRARIES = ("numpy",)


def _cpuinfo() -> list[tuple[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    return [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in text.splitlines()) if v]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform`` elsewhere)."""
    for key, value in _cpuinfo():
        if key == "model name":
            return value
    return platform.processor() or platform.machine()


def cpu_clock_mhz() -> float | None:
    """Mean current clock of the cores in MHz (``cpu MHz`` of ``/proc/cpuinfo``), None if unknown."""
    mhz = []
    for key, value in _cpuinfo():
        if key == "cpu MHz":
            try:
                mhz.append(float(value))
            except ValueError:
                pass
    return round(sum(mhz) / len(mhz), 1) if mhz else None


def library_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution (None when it is not installed)."""
    out: dict[str, str | None] = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine_info(libraries: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    """The ``machine`` object of a bench report: hardware, OS, Python, ``libraries`` versions
    (:data:`COMMON_LIBRARIES` + ``libraries``) and the bench's ``extra`` keys."""
    try:
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    names = dict.fromkeys([*COMMON_LIBRARIES, *libraries])
    return {
        "cpu": cpu_model(), "cpu_mhz": cpu_clock_mhz(), "cpu_count": os.cpu_count(), "memory_gb": memory_gb,
        "platform": platform.platform(), "python": platform.python_version(),
        "libraries": library_versions(names), **extra,
    }


def process_cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process, all threads (Linux ``/proc/<pid>/stat``; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu_seconds() -> dict[str, float]:
    """CPU seconds of the whole machine since boot, all cores (Linux ``/proc/stat``; zeros elsewhere): ``busy``
    (every process and the kernel: user, nice, system, irq, softirq) and ``steal`` (taken by the hypervisor)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    except (OSError, IndexError, ValueError):
        return {"busy": 0.0, "steal": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    return {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick}


def process_rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MiB (Linux ``/proc/<pid>/status`` ``VmRSS``; None elsewhere or when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, IndexError, ValueError):
        pass
    return None
