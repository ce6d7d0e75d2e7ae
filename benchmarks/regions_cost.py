"""Region indexing cost: images/s with `grid` and with `mtcnn` regions, against whole-image indexing.

Real offline photos (scikit-image, scikit-learn; each also mirrored), the default model
(tf_efficientnet_lite0). Measured side by side in one run on this machine: whole-image indexing is
`build_index` on a fresh index (scan, decode, embed, catalog, faiss); region indexing is
`build_regions` on that index (decode at full size, propose, crop, embed every crop, catalog,
regions.faiss), the model already loaded.

    .venv/bin/python benchmarks/regions_cost.py [--sources grid mtcnn] [--copies 2]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from PIL import Image  # noqa: E402

from _common import real_photos  # noqa: E402
from index.directory import IndexStore  # noqa: E402
from retrieval.images.decode import to_rgb  # noqa: E402
from retrieval.collection.build import BuildOptions, build_index  # noqa: E402
from retrieval.runtimes.settings import InferenceSettings  # noqa: E402
from retrieval.collection.model import index_model  # noqa: E402
from retrieval.regions import RegionOptions, build_regions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", nargs="+", default=["grid", "mtcnn"])
    ap.add_argument("--copies", type=int, default=2, help="each photo as is, then mirrored")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        sizes = []
        for name, arr in real_photos().items():
            img = to_rgb(Image.fromarray(arr))
            for c in range(args.copies):
                (img if c == 0 else img.transpose(Image.FLIP_LEFT_RIGHT)).save(folder / f"{name}_{c}.jpg", quality=90)
                sizes.append(img.width * img.height)
        n = len(sizes)
        # imports and caches warm
        build_index([folder], Path(tmp) / "warm", BuildOptions(inference=InferenceSettings(workers=1)))
        start = time.perf_counter()
        build_index([folder], Path(tmp) / "ix", BuildOptions(inference=InferenceSettings(workers=1)))
        whole = time.perf_counter() - start
        rows = []
        for spec in args.sources:
            with IndexStore.open(Path(tmp) / "ix") as store:
                model = index_model(store)
                start = time.perf_counter()
                report = build_regions(store, model, RegionOptions(spec), workers=1)
                seconds = time.perf_counter() - start
            rows.append((spec, report.total, seconds))
    print(f"region indexing cost: {n} real photos (median {sorted(sizes)[n // 2] / 1e6:.2f} Mpx), "
          f"tf_efficientnet_lite0, CPU")
    print(f"  {'indexing':22} {'regions':>8} {'seconds':>8} {'images/s':>9} {'x whole time':>13}")
    print(f"  {'whole image':22} {n:8d} {whole:8.1f} {n / whole:9.2f} {1.0:13.1f}")
    for spec, total, seconds in rows:
        print(f"  {'regions ' + spec:22} {total:8d} {seconds:8.1f} {n / seconds:9.2f} {seconds / whole:13.1f}")


if __name__ == "__main__":
    main()
