"""Run the peers (imagededup PHash and CNN, fastdup) on one folder; print their pairs as JSON.

Runs in its own virtual environment (bench-out/peers-venv: `python3 -m venv bench-out/peers-venv &&
bench-out/peers-venv/bin/pip install imagededup fastdup`), never in retr's: they pin older numpy and
Pillow. Called by benchmarks/dedupe_quality.py; not a project dependency.

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
    for name, fn in (("imagededup PHash", imagededup_phash), ("imagededup CNN", imagededup_cnn),
                     ("fastdup", fastdup_pairs)):
        try:
            pairs, seconds = fn(folder)
            result[name] = {"pairs": pairs, "seconds": seconds}
        except Exception as exc:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            result[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
