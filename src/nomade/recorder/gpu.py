"""GPU utilisation and memory per process through NVML (libnvidia-ml) via ctypes.

``GpuProbe.open()`` returns None when the library or a GPU is absent, so the recorder skips GPUs
cleanly. Utilisation is per device (NVML has no per-process utilisation that is cheap and
reliable); a job's gpu_util is the mean over the devices its processes use.
"""

import ctypes
import ctypes.util
from typing import Dict, List, Optional, Tuple

_LIB_NAMES = ("libnvidia-ml.so.1", "libnvidia-ml.so")
_MAX_PROCS = 256


class _Utilization(ctypes.Structure):
    _fields_ = [("gpu", ctypes.c_uint), ("memory", ctypes.c_uint)]


class _ProcessInfo(ctypes.Structure):  # nvmlProcessInfo_v2/v3 layout (pid, usedGpuMemory, ids)
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


class GpuProbe:
    def __init__(self, lib: ctypes.CDLL, handles: List[ctypes.c_void_p]):
        self._lib, self._handles = lib, handles

    @classmethod
    def open(cls, lib_names=_LIB_NAMES) -> Optional["GpuProbe"]:
        lib = None
        for name in list(lib_names) + [ctypes.util.find_library("nvidia-ml") or ""]:
            if not name:
                continue
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            return None
        try:
            if _init(lib) != 0:
                return None
            count = ctypes.c_uint()
            if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
                return None
            handles = []
            for i in range(count.value):
                h = ctypes.c_void_p()
                if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(h)) == 0:
                    handles.append(h)
        except AttributeError:   # a stub library without these symbols
            return None
        return cls(lib, handles) if handles else None

    @property
    def device_count(self) -> int:
        return len(self._handles)

    def by_pid(self) -> Dict[int, Tuple[int, int, Optional[float]]]:
        """pid -> (device index, used GPU memory bytes, device utilisation %)."""
        out: Dict[int, Tuple[int, int, Optional[float]]] = {}
        for idx, h in enumerate(self._handles):
            util = _Utilization()
            u = float(util.gpu) if self._lib.nvmlDeviceGetUtilizationRates(h, ctypes.byref(util)) == 0 else None
            for getter in ("nvmlDeviceGetComputeRunningProcesses_v3",
                           "nvmlDeviceGetComputeRunningProcesses_v2",
                           "nvmlDeviceGetGraphicsRunningProcesses_v3"):
                fn = getattr(self._lib, getter, None)
                if fn is None:
                    continue
                n = ctypes.c_uint(_MAX_PROCS)
                buf = (_ProcessInfo * _MAX_PROCS)()
                if fn(h, ctypes.byref(n), buf) != 0:
                    continue
                for i in range(min(n.value, _MAX_PROCS)):
                    mem = buf[i].usedGpuMemory
                    mem = 0 if mem >= (1 << 63) else int(mem)   # NVML_VALUE_NOT_AVAILABLE
                    prev = out.get(buf[i].pid)
                    out[buf[i].pid] = (idx, mem + (prev[1] if prev else 0), u)
        return out

    def devices(self) -> List[Dict[str, float]]:
        """Per-device utilisation % and memory used (MiB)."""
        out = []
        for idx, h in enumerate(self._handles):
            util = _Utilization()
            mem = (ctypes.c_ulonglong * 3)()   # nvmlMemory_t: total, free, used
            rc_u = self._lib.nvmlDeviceGetUtilizationRates(h, ctypes.byref(util))
            rc_m = self._lib.nvmlDeviceGetMemoryInfo(h, ctypes.byref(mem))
            out.append({"index": idx, "util": float(util.gpu) if rc_u == 0 else None,
                        "mem_used_mb": mem[2] / 1048576.0 if rc_m == 0 else None,
                        "mem_total_mb": mem[0] / 1048576.0 if rc_m == 0 else None})
        return out


def _init(lib: ctypes.CDLL) -> int:
    fn = getattr(lib, "nvmlInit_v2", None) or lib.nvmlInit
    return fn()
