"""gpu: per-GPU utilisation, memory, temperature, power, ECC errors and XID events through NVML
(``pynvml`` from the optional ``nvidia-ml-py`` package: ``pip install nomade[gpu]``).

Skipped with one line when the package is missing or no NVIDIA driver answers. A value a GPU does
not support (NVMLError_NotSupported: power on some boards, ECC on consumer cards) is left out for
that GPU; the other values still come."""

import importlib
from typing import Any, Callable, List, Optional

from .base import CollectContext, Collector, CollectorSkipped, Metric, register
from .external import clean_label, setting

XID_EVENT_TIMEOUT_MS = 0         # poll: never wait for an event inside a cycle


def load_nvml() -> Any:
    """The pynvml module, initialised; CollectorSkipped when it or the driver is absent."""
    try:
        nvml = importlib.import_module("pynvml")
    except ImportError:
        raise CollectorSkipped("nvidia-ml-py not installed (pip install nomade[gpu])") from None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise CollectorSkipped(f"no nvidia driver ({clean_label(str(exc), 80)})") from None
    return nvml


def _optional(nvml: Any, call: Callable[[], Any]) -> Optional[Any]:
    try:
        return call()
    except nvml.NVMLError:
        return None


def _text(value: Any) -> str:
    return clean_label(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value), 96)


def gpu_metrics(nvml: Any, index: int, host: str = "") -> List[Metric]:
    """One GPU's values; labels gpu (index), uuid, name."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    labels = {"gpu": str(index), "uuid": _text(nvml.nvmlDeviceGetUUID(handle)),
              "name": _text(nvml.nvmlDeviceGetName(handle))}
    out = []

    def add(metric: str, value: Optional[float]) -> None:
        if value is not None:
            out.append(Metric.of(metric, value, host=host, **labels))

    util = _optional(nvml, lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
    add("gpu.util_pct", util.gpu if util is not None else None)
    mem = _optional(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
    add("gpu.mem_used_bytes", mem.used if mem is not None else None)
    add("gpu.mem_total_bytes", mem.total if mem is not None else None)
    add("gpu.temp_c", _optional(nvml, lambda: nvml.nvmlDeviceGetTemperature(
        handle, nvml.NVML_TEMPERATURE_GPU)))
    power_mw = _optional(nvml, lambda: nvml.nvmlDeviceGetPowerUsage(handle))
    add("gpu.power_w", power_mw / 1000.0 if power_mw is not None else None)
    add("gpu.ecc_errors", _optional(nvml, lambda: nvml.nvmlDeviceGetTotalEccErrors(
        handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC)))
    return out


def xid_events(nvml: Any, state: dict, count: int, host: str = "") -> List[Metric]:
    """XID events since the previous cycle (``gpu.xid``, value = XID code, labels gpu, uuid).
    The event set is created once and kept in the collector state."""
    if "xid_set" not in state:
        event_set = _optional(nvml, nvml.nvmlEventSetCreate)
        if event_set is None:
            return []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            _optional(nvml, lambda h=handle: nvml.nvmlDeviceRegisterEvents(
                h, nvml.nvmlEventTypeXidCriticalError, event_set))
        state["xid_set"] = event_set
    out = []
    for _ in range(64):                      # bounded: a storm of events never holds the cycle
        data = _optional(nvml, lambda: nvml.nvmlEventSetWait(state["xid_set"], XID_EVENT_TIMEOUT_MS))
        if data is None:
            break
        uuid = _text(_optional(nvml, lambda d=data: nvml.nvmlDeviceGetUUID(d.device)) or "")
        out.append(Metric.of("gpu.xid", data.eventData, host=host, uuid=uuid))
    return out


@register
class GpuCollector(Collector):
    name = "gpu"
    help = "Per-GPU utilisation, memory, temperature, power, ECC errors, XID events (NVML)."
    interval_s = 30.0
    needs = "an NVIDIA driver and nvidia-ml-py (pip install nomade[gpu])"

    def collect(self, ctx: CollectContext) -> List[Metric]:
        nvml = ctx.state.get("nvml") or load_nvml()   # initialised once, kept between cycles
        ctx.state["nvml"] = nvml
        count = nvml.nvmlDeviceGetCount()
        if count == 0:
            raise CollectorSkipped("no nvidia gpu on this host")
        metrics: List[Metric] = []
        for index in range(count):
            metrics.extend(gpu_metrics(nvml, index, ctx.hostname))
        if setting(ctx, self.name, "xid"):
            metrics.extend(xid_events(nvml, ctx.state, count, ctx.hostname))
        return metrics
