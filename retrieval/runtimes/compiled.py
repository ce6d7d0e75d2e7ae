"""OpenVINO networks compiled for this CPU, kept in the export's folder, so a process imports one (tens of ms)
instead of compiling the export again (about twice as long).

``compiled/<key>.blob`` holds the sha256 (64 hex digits) of what ``CompiledModel.export_model`` wrote, then
those bytes, written whole (a temporary file renamed over it: two processes that store at once leave one
whole blob). The key hashes everything a compiled network depends on: the export's files (their digests
in its meta.json, which are checked before anything is opened), OpenVINO's full build, the device and what
the CPU can do (its name, OpenVINO's optimisation capabilities, the instruction set flags the kernel
reports), and the compile settings (precision, threads, performance hint, batch shape). OpenVINO imports a
damaged blob without a word (a flipped byte gives other vectors), so a blob is used only when its bytes
match the recorded sha256; one that does not, or that OpenVINO refuses, is said in a warning, removed and
compiled again. A cache folder that cannot be written costs the compile, nothing else.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEVICE = "CPU"
FOLDER = "compiled"
FORMAT = 1  # bump when what a key covers changes
DIGEST = 64  # the hex sha256 in front of a blob


def cpu_flags() -> list[str]:
    """The instruction set extensions the kernel reports for the first CPU (empty where it does not)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return sorted(f for f in line.split(":", 1)[1].split()
                                  if f.startswith(("avx", "amx", "sse", "fma", "f16c", "vnni", "asimd", "sve")))
    except OSError:
        pass
    return []


class CompiledCache:
    """The compiled networks of one export folder, for one OpenVINO ``core``."""

    def __init__(self, core: Any, export: Path):
        self.core, self.folder = core, export / FOLDER
        self._device: dict[str, Any] | None = None

    def _device_facts(self) -> dict[str, Any]:
        if self._device is None:
            import openvino as ov
            self._device = {"openvino": ov.get_version(), "device": DEVICE,
                            "name": str(self.core.get_property(DEVICE, "FULL_DEVICE_NAME")),
                            "capabilities": sorted(map(str, self.core.get_property(DEVICE,
                                                                                   "OPTIMIZATION_CAPABILITIES"))),
                            "flags": cpu_flags()}
        return self._device

    def _path(self, config: dict[str, Any], shape: str) -> Path:
        try:  # the export's own files, as its meta.json records them: a blob never outlives what it came from
            export = json.loads((self.folder.parent / "meta.json").read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            export = None
        key = {"format": FORMAT, **self._device_facts(), "export": export, "shape": shape,
               "config": {k: str(v) for k, v in config.items()}}
        return self.folder / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]}.blob"

    def has_any(self) -> bool:
        """Whether any compiled network is kept for this export (no key computed, nothing read)."""
        try:
            return any(p.suffix == ".blob" for p in self.folder.iterdir())
        except OSError:
            return False

    def load(self, config: dict[str, Any], shape: str) -> Any | None:
        """The network kept compiled with ``config`` for input ``shape``; None when there is none or it cannot
        be used (then it is compiled and kept again)."""
        path = self._path(config, shape)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        recorded, blob = data[:DIGEST], data[DIGEST:]
        if hashlib.sha256(blob).hexdigest().encode() != recorded:
            log.warning(f"the compiled network at {path} does not match its recorded sha256; compiling again")
            self._remove(path)
            return None
        try:
            return self.core.import_model(blob, DEVICE, config)
        except Exception as exc:  # noqa: BLE001 - a blob of another build that slipped past the key: compile
            log.warning(f"OpenVINO cannot import the compiled network at {path} ({type(exc).__name__}); "
                        "compiling again")
            self._remove(path)
            return None

    def store(self, config: dict[str, Any], shape: str, compiled: Any) -> None:
        """Keep ``compiled`` (``config``, input ``shape``): its digest and bytes in one file, written whole."""
        path = self._path(config, shape)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}")
        try:
            stream = io.BytesIO()
            compiled.export_model(stream)
            data = stream.getvalue()
            self.folder.mkdir(exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(hashlib.sha256(data).hexdigest().encode())
                fh.write(data)
            os.replace(tmp, path)
        except Exception as exc:  # noqa: BLE001 - a read-only or full cache, a device that cannot export
            log.debug(f"the compiled network is not kept ({type(exc).__name__}: {exc})")
            self._remove(tmp)

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
