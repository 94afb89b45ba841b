"""NVML through ctypes: skipped cleanly without the library; per-process parsing with a fake."""

from nomade.recorder import gpu
from nomade.recorder.gpu import GpuProbe


def test_no_nvml_library_means_no_probe(monkeypatch):
    monkeypatch.setattr(gpu.ctypes.util, "find_library", lambda name: None)
    assert GpuProbe.open(lib_names=("libnvidia-ml-does-not-exist.so.1",)) is None


class FakeNvml:
    """Mimics the few NVML calls the probe makes (arguments arrive as ctypes byref objects)."""

    def nvmlInit_v2(self):
        return 0

    def nvmlDeviceGetCount_v2(self, count):
        count._obj.value = 2
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, i, handle):
        handle._obj.value = 100 + i
        return 0

    def nvmlDeviceGetUtilizationRates(self, h, util):
        util._obj.gpu = 80 if h.value == 100 else 10
        return 0

    def nvmlDeviceGetComputeRunningProcesses_v3(self, h, n, buf):
        procs = [(601, 2 << 30)] if h.value == 100 else [(601, 1 << 30), (700, (1 << 64) - 1)]
        for i, (pid, mem) in enumerate(procs):
            buf[i].pid, buf[i].usedGpuMemory = pid, mem
        n._obj.value = len(procs)
        return 0

    def nvmlDeviceGetMemoryInfo(self, h, mem):
        mem._obj[0], mem._obj[2] = 80 << 30, 3 << 30
        return 0


def test_by_pid_sums_memory_across_devices_and_ignores_unavailable(monkeypatch):
    monkeypatch.setattr(gpu.ctypes, "CDLL", lambda name: FakeNvml())
    probe = GpuProbe.open(lib_names=("fake",))
    assert probe.device_count == 2
    by_pid = probe.by_pid()
    assert by_pid[601][1] == 3 << 30
    assert by_pid[700] == (1, 0, 10.0)                 # NVML_VALUE_NOT_AVAILABLE -> 0
    devs = probe.devices()
    assert devs[0]["util"] == 80.0 and devs[0]["mem_used_mb"] == 3 * 1024
