"""Which runtime embeds: torch on CUDA; on a CPU the fastest exact runtime installed, else torch.

An export is used only after its vectors agreed with torch's on a probe batch. Whatever goes wrong
(the runtime is not installed, an op does not export, a cache file is corrupt, the vectors differ)
is said in one warning line and torch embeds instead: never a crash, never other vectors.
"""
from __future__ import annotations

import logging

import torch

from retrieval.models.load import LoadedModel
from retrieval.runtimes.base import AUTO, RUNTIMES, Opened, Runtime, check_choice
from retrieval.runtimes.cache import AUTO_ORDER, discard
from retrieval.runtimes.check import EXACT_COSINE, checked_cosine, note_checked, probe_batch, session_cosine
from retrieval.runtimes.export import cached_export, input_size
from retrieval.runtimes.torch import TorchSession
from retrieval.workers import usable_cores

__all__ = ["AUTO_ORDER", "Opened", "check_choice", "open_runtime"]

log = logging.getLogger(__name__)

REDUCED_COSINE = 0.95  # the floor for an explicit reduced --precision (bf16 measured 0.98 on this model)


def open_runtime(model: LoadedModel, device: torch.device, runtime: str = AUTO, precision: str = "f32") -> Opened:
    """The session that embeds with ``model`` on ``device``: the runtime asked for, or torch when it cannot."""
    check_choice(runtime, precision)
    cfg = model.info.data_config
    reference = TorchSession(model.net, device, tuple(cfg["mean"]), tuple(cfg["std"]))
    if device.type != "cpu" or runtime == "torch":
        if runtime not in (AUTO, "torch"):
            log.warning(f"--runtime {runtime} runs on the CPU; torch embeds on {device}")
        if precision != "f32":
            log.warning(f"--precision {precision} applies to --runtime openvino; torch embeds in its own precision")
        return Opened(reference, "torch")
    explicit = runtime != AUTO
    for name in (AUTO_ORDER if not explicit else (runtime,)):
        rt = RUNTIMES.get(name)
        if precision not in rt.precisions:
            if explicit:
                log.warning(f"--runtime {name} has no --precision {precision}; torch embeds instead")
            continue
        try:
            rt.version()
            rt.load()
        except Exception as exc:  # noqa: BLE001 - missing, or broken on import
            if explicit:
                log.warning(f"--runtime {name} needs {rt.module}, which cannot be imported "
                            f"({type(exc).__name__}); torch embeds instead")
            continue
        try:
            return _open_checked(model, rt, precision, reference)
        except _Refused as exc:
            log.warning(f"{exc}; torch embeds instead")
    if precision != "f32" and not explicit:
        log.warning(f"no installed runtime runs --precision {precision}; torch embeds in f32")
    return Opened(reference, "torch")


class _Refused(Exception):
    """An export that cannot be used, with the one line that says why."""


def _open_checked(model: LoadedModel, rt: Runtime, precision: str, reference: TorchSession) -> Opened:
    """Open the cached export (exporting it first when missing); check it against torch unless this export
    passed the check before (a note in its folder: later processes skip the torch forward)."""
    floor = EXACT_COSINE if precision == "f32" else REDUCED_COSINE
    for attempt in (0, 1):
        try:
            folder, fresh = cached_export(model, rt)
        except Exception as exc:  # noqa: BLE001 - an op that does not export, a full disk, ...
            raise _Refused(f"{model.info.spec} does not export to {rt.name} "
                           f"({type(exc).__name__}: {_first_line(exc)})") from None
        try:
            session = rt.open(folder, threads=usable_cores(), precision=precision)
            passed = checked_cosine(folder, precision)
            if passed is None:
                probe = probe_batch(input_size(model))  # made only when checking (60 ms)
                cosine = session_cosine(reference(probe), session, probe)
            else:
                cosine = passed
        except Exception as exc:  # noqa: BLE001 - a cache file damaged in a way its digest did not catch
            if fresh or attempt:
                raise _Refused(f"{rt.name} cannot run the export of {model.info.spec} "
                               f"({type(exc).__name__}: {_first_line(exc)})") from None
            log.warning(f"the cached {rt.name} export at {folder} cannot be opened; exporting it again")
            discard(folder)
            continue
        if cosine < floor:
            raise _Refused(f"{rt.name} vectors of {model.info.spec} differ from torch's "
                           f"(min cosine {cosine:.5f} < {floor})")
        if passed is None:
            note_checked(folder, precision, cosine)
        return Opened(session, rt.name, cosine, fresh)
    raise AssertionError("unreachable")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""
