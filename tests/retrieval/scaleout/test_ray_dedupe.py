"""`retr dedupe --ray`: the per-image work and the verification as Ray tasks give the local run's groups."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from PIL import Image

from retrieval.dedupe.options import DedupeOptions
from retrieval.dedupe.run import Action, dedupe_paths
from retrieval.scaleout.cluster import RaySettings
from retrieval.scaleout.tasks import cluster_mapper
from tests.conftest import ODD, PHOTOS


def edited(folder):
    """The sample photos, an edited copy of three (cropped, resized, recompressed) and a corrupt file."""
    shutil.copytree(PHOTOS, folder, ignore=shutil.ignore_patterns("*.md"))
    for name in ("chelsea", "coffee", "astronaut"):
        img = Image.open(PHOTOS / f"{name}.jpg").convert("RGB")
        w, h = img.size
        img.crop((w // 20, h // 20, w, h)).resize((w // 2, h // 2)).save(folder / f"{name}-copy.jpg", quality=60)
    shutil.copy(ODD / "corrupt.jpg", folder / "corrupt.jpg")
    return folder


def without_times(data):
    if isinstance(data, dict):
        return {k: without_times(v) for k, v in data.items() if "second" not in k and "per_s" not in k}
    if isinstance(data, list):
        return [without_times(v) for v in data]
    return data


def test_dedupe_on_the_cluster_finds_the_local_groups(ray_cluster, tmp_path):
    folder = edited(tmp_path / "images")
    opts = DedupeOptions()
    here, _ = dedupe_paths([folder], opts, Action(), workers=0)
    calls = []
    with cluster_mapper(RaySettings(ray_cluster.address), [str(folder)]) as mapper:
        def counted(fn, tasks, **kw):
            calls.append(fn.__name__)
            return mapper(fn, tasks, **kw)
        there, _ = dedupe_paths([folder], opts, Action(), mapper=counted)
    assert {"_features_chunk", "_verify_chunk"} <= set(calls)  # both stages went to the cluster
    assert without_times(there.to_json()) == without_times(here.to_json())
    copies = {os.path.basename(d["path"]) for g in here.to_json()["groups"] for d in g["duplicates"]}
    assert copies == {"chelsea-copy.jpg", "coffee-copy.jpg", "astronaut-copy.jpg"}


def test_the_dedupe_command_takes_ray_and_refuses_it_for_undo(tmp_path):
    folder = edited(tmp_path / "images")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "-m", "cli.main", "dedupe", str(folder), "--ray", "local", "--json"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["groups"]) == 3
    undo = subprocess.run([sys.executable, "-m", "cli.main", "dedupe", "--undo", str(tmp_path / "m.json"),
                           "--ray", "local"], capture_output=True, text=True, env=env, timeout=120)
    assert undo.returncode == 1 and undo.stderr == "error: --undo moves files back here: it takes no --ray\n"
