"""The ``machine`` object every bench JSON carries, and the process CPU-time reader."""
import os
import time

from emowatch.bench.machine import machine_info, process_cpu_seconds


def test_machine_info_records_cpu_clock_and_library_versions():
    m = machine_info(("numpy", "no-such-distribution-emowatch"), device="cpu")
    assert m["cpu"] and m["cpu_count"] == os.cpu_count() and m["python"] and m["platform"]
    if os.path.exists("/proc/cpuinfo") and "cpu MHz" in open("/proc/cpuinfo").read():
        assert m["cpu_mhz"] > 0
    assert m["libraries"]["numpy"] and m["libraries"]["no-such-distribution-emowatch"] is None
    assert m["device"] == "cpu"


def test_process_cpu_seconds_counts_this_process():
    before = process_cpu_seconds(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    if os.path.exists(f"/proc/{os.getpid()}/stat"):
        assert process_cpu_seconds(os.getpid()) > before
    assert process_cpu_seconds(-1) == 0.0
