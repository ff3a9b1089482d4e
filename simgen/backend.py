"""Pick the Mitsuba/Dr.Jit variant and a working libLLVM *before* ``sionna.rt`` is imported.

``select_backend("auto")`` prefers ``cuda_ad_mono_polarized`` (OptiX, NVIDIA GPU) and falls back
to ``llvm_ad_mono_polarized`` (CPU). The LLVM backend needs libLLVM >= 16: Dr.Jit 1.5 crashes
with older versions ("Cannot select: fminimum"), so we locate one ourselves and point
``DRJIT_LIBLLVM_PATH`` at it.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Literal

from .errors import BackendError

Device = Literal["auto", "cpu", "gpu"]
CUDA_VARIANT = "cuda_ad_mono_polarized"
LLVM_VARIANT = "llvm_ad_mono_polarized"
MIN_LLVM = 16
INSTALL_HINT = "apt-get install -y libllvm19 (or set DRJIT_LIBLLVM_PATH to a libLLVM.so >= 16)"

_LLVM_GLOBS = (
    "/usr/lib/x86_64-linux-gnu/libLLVM*.so*",
    "/usr/lib/aarch64-linux-gnu/libLLVM*.so*",
    "/usr/lib/llvm-*/lib/libLLVM*.so*",
    "/usr/lib64/libLLVM*.so*",
    "/usr/local/lib/libLLVM*.so*",
    "/opt/homebrew/opt/llvm/lib/libLLVM.dylib",
)


def llvm_version(path: str) -> int | None:
    """Major version encoded in a libLLVM file name (``libLLVM-15.so``, ``libLLVM.so.19.1``)."""
    m = re.search(r"libLLVM[-.]?(?:so\.)?(\d+)", os.path.basename(path))
    if m is None:
        m = re.search(r"llvm-(\d+)", path)
    return int(m.group(1)) if m else None


def find_libllvm() -> str:
    """Path of the newest libLLVM >= 16 on this machine; raises BackendError if none."""
    env = os.environ.get("DRJIT_LIBLLVM_PATH")
    if env:
        if not os.path.exists(env):
            raise BackendError(f"DRJIT_LIBLLVM_PATH={env} does not exist; {INSTALL_HINT}")
        return env
    found = []
    for pattern in _LLVM_GLOBS:
        for path in glob.glob(pattern):
            version = llvm_version(path)
            if version is not None and version >= MIN_LLVM:
                found.append((version, path))
    if not found:
        raise BackendError(f"no libLLVM >= {MIN_LLVM} found for CPU ray tracing; {INSTALL_HINT}")
    return max(found)[1]


def select_backend(device: Device = "auto") -> str:
    """Set the Mitsuba variant for ``device`` and return its name.

    Must run before ``import sionna.rt``; calling it again with the same outcome is a no-op.
    """
    if device not in ("auto", "cpu", "gpu"):
        raise BackendError(f"--device must be cpu, gpu or auto, not {device!r}")
    import mitsuba as mi

    if device in ("auto", "gpu"):
        try:
            mi.set_variant(CUDA_VARIANT)
            import drjit as dr

            dr.zeros(mi.Float, 1)  # forces CUDA initialisation
            return CUDA_VARIANT
        except Exception as exc:  # noqa: BLE001 - any failure means "no working GPU"
            if device == "gpu":
                raise BackendError(f"no working NVIDIA GPU for {CUDA_VARIANT}: {exc}") from exc
    os.environ.setdefault("DRJIT_LIBLLVM_PATH", find_libllvm())
    try:
        mi.set_variant(LLVM_VARIANT)
        import drjit as dr

        dr.zeros(mi.Float, 1)
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"the LLVM backend failed to start ({exc}); {INSTALL_HINT}") from exc
    return LLVM_VARIANT
