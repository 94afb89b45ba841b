"""gpu collector with a fake pynvml (values in the shape NVML returns them on an H100/H200 node):
per-GPU values, unsupported values left out, XID events, skips without the package or driver."""

import sys
import types

import pytest

from nomade.collectors import gpu
from nomade.collectors.base import CollectContext, CollectorSkipped


class NVMLError(Exception):
    pass


class NotSupported(NVMLError):
    pass


def fake_pynvml(init_error=None, count=2, xids=()):
    """Two GPUs: GPU 0 an H200 with everything, GPU 1 without power or ECC support."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_TEMPERATURE_GPU = 0
    m.NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    m.NVML_VOLATILE_ECC = 0
    m.nvmlEventTypeXidCriticalError = 8
    pending = list(xids)

    def init():
        if init_error:
            raise NVMLError(init_error)
    m.nvmlInit = init
    m.nvmlDeviceGetCount = lambda: count
    m.nvmlDeviceGetHandleByIndex = lambda i: ("h", i)
    m.nvmlDeviceGetUUID = lambda h: f"GPU-0000000{h[1]}-aaaa-bbbb-cccc-dddddddddddd"
    m.nvmlDeviceGetName = lambda h: b"NVIDIA H200" if h[1] == 0 else "NVIDIA L40S\x1b[0m"
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87 if h[1] == 0 else 0, memory=40)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=150754820096, used=2 ** 63 if h[1] == 1 else 80 << 30, free=0)
    m.nvmlDeviceGetTemperature = lambda h, sensor: 54

    def power(h):
        if h[1] == 1:
            raise NotSupported("Not Supported")
        return 312456
    m.nvmlDeviceGetPowerUsage = power

    def ecc(h, kind, counter):
        if h[1] == 1:
            raise NotSupported("Not Supported")
        return 2
    m.nvmlDeviceGetTotalEccErrors = ecc
    m.nvmlEventSetCreate = lambda: "set"
    m.nvmlDeviceRegisterEvents = lambda h, types_, event_set: None

    def wait(event_set, timeout_ms):
        if not pending:
            raise NVMLError("Timeout")
        return pending.pop(0)
    m.nvmlEventSetWait = wait
    return m


def values(ms, name):
    return {m.label("gpu"): m.value for m in ms if m.metric == name}


def test_per_gpu_values_and_unsupported_left_out(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    ms = gpu.GpuCollector().collect(CollectContext(settings={}, run=None, hostname="gpu01"))
    assert values(ms, "gpu.util_pct") == {"0": 87, "1": 0}
    assert values(ms, "gpu.mem_used_bytes") == {"0": 80 << 30, "1": 2.0 ** 63}
    assert values(ms, "gpu.mem_total_bytes")["0"] == 150754820096
    assert values(ms, "gpu.temp_c") == {"0": 54, "1": 54}
    assert values(ms, "gpu.power_w") == {"0": pytest.approx(312.456)}
    assert values(ms, "gpu.ecc_errors") == {"0": 2}
    first = [m for m in ms if m.label("gpu") == "0"][0]
    assert first.label("name") == "NVIDIA H200" and first.label("uuid").startswith("GPU-")
    assert first.host == "gpu01"
    assert all("\x1b" not in m.label("name") for m in ms)


def test_xid_events_since_last_cycle(monkeypatch):
    device = ("h", 1)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(xids=[
        types.SimpleNamespace(device=device, eventData=79), types.SimpleNamespace(device=device, eventData=48)]))
    ctx = CollectContext(settings={}, run=None)
    ms = gpu.GpuCollector().collect(ctx)
    assert [(m.value, m.label("uuid")[:12]) for m in ms if m.metric == "gpu.xid"] == [
        (79, "GPU-00000001"), (48, "GPU-00000001")]
    again = gpu.GpuCollector().collect(ctx)          # same state: events already read
    assert [m for m in again if m.metric == "gpu.xid"] == []


def test_skipped_without_driver(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error="Driver Not Loaded"))
    with pytest.raises(CollectorSkipped, match="^no nvidia driver"):
        gpu.GpuCollector().collect(CollectContext(settings={}, run=None))


def test_skipped_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)      # import pynvml -> ImportError
    with pytest.raises(CollectorSkipped, match="^nvidia-ml-py not installed"):
        gpu.GpuCollector().collect(CollectContext(settings={}, run=None))


def test_skipped_without_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=0))
    with pytest.raises(CollectorSkipped, match="no nvidia gpu"):
        gpu.GpuCollector().collect(CollectContext(settings={}, run=None))
