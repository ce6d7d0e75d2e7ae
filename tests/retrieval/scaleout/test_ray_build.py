"""`--ray` builds on a simulated two-node cluster against local builds, and what Ray promises under faults."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.directory import IndexStore
from index.errors import RetrError
from retrieval.collection.build import BuildOptions, build_index
from retrieval.images.decode import NOT_UTF8
from retrieval.scaleout.cluster import RaySettings
from tests.conftest import ODD, PHOTOS, TINY_MODEL, cpu

pytestmark = pytest.mark.timeout(600)


def opts(address: str | None, **ray) -> BuildOptions:
    return BuildOptions(model=TINY_MODEL, random_weights=True, inference=cpu(batch_size=2, workers=0),
                        ray=RaySettings(address, **ray) if address else None)


def torture(folder: Path) -> Path:
    """The sample photos and every odd file (corrupt, truncated, empty, a bomb, a text file named .png), a FIFO,
    and a photo whose name is not UTF-8."""
    shutil.copytree(PHOTOS, folder, ignore=shutil.ignore_patterns("*.md"))
    for f in ODD.iterdir():
        shutil.copy(f, folder / f"odd-{f.name}")
    os.mkfifo(folder / "pipe.jpg")
    shutil.copy(PHOTOS / "coffee.jpg", os.fsdecode(bytes(folder) + b"/caf\xe9-latin1.jpg"))
    return folder


def rows(index: Path) -> dict[str, tuple]:
    with IndexStore.open(index, mode="read") as store:
        return {p: (r.sha256, r.status, r.error, r.bytes, r.width, r.height, r.has_vector)
                for p, r in store.catalog.image_rows().items()}


def vectors_by_path(index: Path) -> dict[str, np.ndarray]:
    with IndexStore.open(index, mode="read") as store:
        paths = store.paths()
        ids = list(paths)
        return dict(zip((paths[i] for i in ids), store.vectors_for(ids)))


def top5(index: Path, queries: np.ndarray) -> list[tuple[list[float], set[str]]]:
    """Each query's five best scores, and the paths scored above the fifth: ids differ between two builds, and
    faiss orders equal scores (identical pictures) by id, so which of a tie makes the cut may differ."""
    with IndexStore.open(index, mode="read") as store:
        out = []
        for hits in store.search(queries, k=5):
            scores = [round(h.score, 4) for h in hits]
            out.append((scores, {h.path for h in hits if round(h.score, 4) > scores[-1]}))
        return out


@pytest.fixture(scope="module")
def built(ray_cluster, tmp_path_factory):
    """The torture folder built locally and with --ray on the cluster."""
    root = tmp_path_factory.mktemp("ray-build")
    folder = torture(root / "images")
    build_index([folder], root / "local", opts(None))
    report = build_index([folder], root / "ray", opts(ray_cluster.address))
    return root, folder, report


def test_a_ray_build_makes_the_index_a_local_build_makes(built):
    root, folder, report = built
    local, ray = rows(root / "local"), rows(root / "ray")
    assert local == ray  # path, sha256, status, error, size: row for row
    good = {Path(p).name for p, r in ray.items() if r[1] == "ok"}
    assert {f"{f.stem}.jpg" for f in PHOTOS.glob("*.jpg")} <= good and len(good) == report.added
    assert {Path(p).name for p, r in ray.items() if r[1] == "error"} >= {
        "odd-corrupt.jpg", "odd-truncated.jpg", "odd-empty.jpg", "odd-bomb.png", "odd-notes.png"}
    skipped = {Path(p).name: e for p, e in report.skipped}
    assert "only regular files are read" in skipped["pipe.jpg"]  # recorded skips, as locally
    assert skipped["caf\\xe9-latin1.jpg"] == NOT_UTF8  # recorded under a printable name
    lv, rv = vectors_by_path(root / "local"), vectors_by_path(root / "ray")
    assert lv.keys() == rv.keys()
    cosines = [float(lv[p] @ rv[p]) for p in lv]
    assert min(cosines) >= 0.9999
    queries = np.stack([lv[p] for p in sorted(lv)])
    assert top5(root / "local", queries) == top5(root / "ray", queries)
    with IndexStore.open(root / "ray", mode="read") as a, IndexStore.open(root / "local", mode="read") as b:
        assert a.manifest.model == b.manifest.model and a.manifest.factory == b.manifest.factory
        assert a.consistent() and a.manifest.vectors == b.manifest.vectors


def test_an_incremental_ray_build_adds_changes_and_drops(ray_cluster, tmp_path):
    folder = torture(tmp_path / "images")
    build_index([folder], tmp_path / "ray", opts(ray_cluster.address))
    shutil.copy(PHOTOS / "rocket.jpg", folder / "new.jpg")
    shutil.copy(PHOTOS / "camera.jpg", folder / "coffee.jpg")  # changed content under an indexed name
    os.utime(folder / "coffee.jpg", (time.time() + 5, time.time() + 5))
    (folder / "brick.jpg").unlink()
    report = build_index([folder], tmp_path / "ray", opts(ray_cluster.address))
    assert (report.added, report.updated, report.removed) == (1, 1, 1)
    build_index([folder], tmp_path / "local", opts(None))
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    lv, rv = vectors_by_path(tmp_path / "local"), vectors_by_path(tmp_path / "ray")
    assert min(float(lv[p] @ rv[p]) for p in lv) >= 0.9999


def many_photos(folder: Path, copies: int) -> Path:
    """``copies`` byte-different copies of each sample photo (a comment makes each file unique)."""
    from PIL import Image
    folder.mkdir(parents=True)
    for src in sorted(PHOTOS.glob("*.jpg")):
        img = Image.open(src).convert("RGB")
        img.thumbnail((160, 160))
        for i in range(copies):
            img.save(folder / f"{src.stem}-{i}.jpg", quality=85, comment=f"copy {i}".encode())
    return folder


def assert_complete(index: Path, folder: Path) -> None:
    """Every image has exactly one catalog row and one vector; the faiss file holds exactly those."""
    with IndexStore.open(index, mode="read") as store:
        found = store.catalog.image_rows()
        names = sorted(Path(p).name for p in found)
        assert names == sorted(p.name for p in folder.iterdir())  # one row per file: none twice, none missing
        assert all(r.has_vector for r in found.values())
        assert store.consistent() and store.manifest.vectors == len(found)
    with sqlite3.connect(index / "catalog.sqlite") as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM images").fetchone() == (len(found),) * 2


def embed_actor_pids(ray) -> list[int]:
    import ray._private.state as state
    return [a["Pid"] for a in state.actors().values()
            if "EmbedActor" in a["ActorClassName"] and a["State"] == "ALIVE"]


def test_an_embedding_actor_killed_mid_build_is_restarted_and_its_batches_retried(ray_cluster, tmp_path):
    import ray
    folder = many_photos(tmp_path / "images", 4)
    killed: list[int] = []

    def kill_one(_n: int) -> None:
        if not killed and (pids := embed_actor_pids(ray)):
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = build_index([folder], tmp_path / "ix", opts(ray_cluster.address), on_batch=kill_one)
    assert killed, "no embedding actor was found to kill"
    assert report.added == 48 and not report.skipped
    assert_complete(tmp_path / "ix", folder)


def test_a_node_removed_mid_build_leaves_the_build_to_the_others(ray_cluster, tmp_path):
    """A worker node that runs an embedding actor leaves the cluster after the first committed batch (another
    node joins afterwards, so later tests keep two nodes)."""
    import ray._private.state as state
    folder = many_photos(tmp_path / "images", 4)
    ray_cluster.add_node(num_cpus=1)
    removed: list[str] = []

    def remove(_n: int) -> None:
        if removed:
            return
        running = {a["Address"]["NodeID"] for a in state.actors().values()
                   if "EmbedActor" in a["ActorClassName"] and a["State"] == "ALIVE"}
        for node in list(ray_cluster.worker_nodes):
            if node.node_id in running:
                removed.append(node.node_id)
                ray_cluster.remove_node(node)
                return

    try:
        report = build_index([folder], tmp_path / "ix", opts(ray_cluster.address, actors=3), on_batch=remove)
    finally:
        while len(ray_cluster.worker_nodes) < 1:
            ray_cluster.add_node(num_cpus=1)
    assert removed, "no worker node ran an embedding actor"
    assert report.added == 48
    assert_complete(tmp_path / "ix", folder)


def count_rows(index: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM images WHERE vector IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def retr(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def test_a_killed_driver_resumes_keeping_finished_batches(tmp_path):
    folder = many_photos(tmp_path / "images", 6)
    index = tmp_path / "ix"
    args = ("index", "build", str(folder), "-i", str(index), "--model", TINY_MODEL, "--random-weights",
            "--device", "cpu", "--batch-size", "2", "--ray", "local", "--json", "-q")
    proc = retr(*args)
    deadline = time.monotonic() + 240
    while count_rows(index) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    kept = count_rows(index)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its local Ray instance shares its fate
    proc.wait()
    try:
        assert 4 <= kept < 72, f"the build was not cut short mid-way ({kept} rows)"
        deadline = time.monotonic() + 60
        while working(in_session(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not working(in_session(proc.pid)), "the killed driver's Ray instance outlived it"
        again = retr(*args)
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        report = json.loads(out)
        assert report["added"] <= 72 - kept and report["total"] == 72  # the finished batches were kept
        assert_complete(index, folder)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the killed run's Ray instance


def in_session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the killed driver's, and everything Ray started for it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[3]) == sid and fields[0] != "Z":
                    found.append(int(entry))
    return found


def working(pids: list[int]) -> list[bytes]:
    """The command lines of ``pids`` but Ray's agents (which exit once they have reported the raylet's end to
    a GCS that is gone, a minute or more later)."""
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            line = Path(f"/proc/{pid}/cmdline").read_bytes()
            if not line.split(b"\0")[0].endswith(b"Agent"):  # ray::DashboardAgent, ray::RuntimeEnvAgent
                lines.append(line[:200])
    return lines


def test_an_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path):
    proc = retr("index", "build", str(PHOTOS), "-i", str(tmp_path / "ix"), "--ray", "127.0.0.1:9")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.startswith("error: cannot reach the Ray cluster at 127.0.0.1:9") and err.count("\n") == 1
    assert not (tmp_path / "ix").exists()


def test_ray_not_installed_is_one_line_and_writes_nothing(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['retr', 'index', 'build', sys.argv[1], '-i', "
            "sys.argv[2], '--ray', 'local']; from cli.main import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(PHOTOS), str(tmp_path / "ix")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == "error: --ray needs Ray, which is not installed: pip install 'ray[data]>=2.50' " \
                          "(on this machine and on every node of the cluster)\n"
    assert not (tmp_path / "ix").exists()


def test_nodes_that_cannot_read_the_images_are_refused_before_anything_is_written(ray_cluster, tmp_path,
                                                                                monkeypatch):
    """The driver sees a file the nodes do not (as on a disk only the driver mounts): here the file leaves
    between the driver's scan and the nodes' check."""
    import retrieval.collection.build as build
    folder = many_photos(tmp_path / "images", 1)
    scan = build.scan

    def scan_then_hide(roots):
        found = scan(roots)
        Path(found.files[0].path).unlink()
        return found

    monkeypatch.setattr(build, "scan", scan_then_hide)
    with pytest.raises(RetrError, match=r"^the Ray node at 127\.0\.0\.1 cannot read .*astronaut-0\.jpg: every node "
                                        r"must see the images at the same paths"):
        build_index([folder], tmp_path / "ix", opts(ray_cluster.address))
    assert not (tmp_path / "ix").exists()


def test_ray_settings_refuse_bad_values():
    with pytest.raises(RetrError, match="is not an address"):
        RaySettings("my cluster")
    with pytest.raises(RetrError, match="--ray-actors must be a whole number of at least 1"):
        RaySettings("local", actors=0)
    assert RaySettings("10.0.0.5:6379").address == "10.0.0.5:6379"
    assert RaySettings("ray://head:10001").address == "ray://head:10001"


def test_nothing_imports_ray_without_ray(tmp_path):
    code = ("import sys; from retrieval.collection.build import BuildOptions, build_index; "
            "from tests.conftest import TINY_MODEL, cpu; "
            f"build_index([{str(PHOTOS)!r}], {str(tmp_path / 'ix')!r}, BuildOptions(model=TINY_MODEL, "
            "random_weights=True, inference=cpu(workers=0))); import cli.main; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]"


def test_recall_with_ray_equals_recall_here(ray_cluster, tmp_path):
    from retrieval.evaluation.recall import RecallOptions, Split, run_recall
    for label, names in {"round": ("coins", "coffee", "chelsea"), "other": ("rocket", "gravel", "brick")}.items():
        (tmp_path / label).mkdir()
        for name in names:
            shutil.copy(PHOTOS / f"{name}.jpg", tmp_path / label / f"{name}.jpg")
    shutil.copy(ODD / "corrupt.jpg", tmp_path / "round" / "corrupt.jpg")  # left out, counted, in both
    split = Split.read(tmp_path, None, None)
    base = RecallOptions(ks=(1, 2, 4), model=TINY_MODEL, random_weights=True, inference=cpu(batch_size=2, workers=0))
    here, missing_here = run_recall(split, base)
    there, missing_there = run_recall(split, dataclasses.replace(base, ray=RaySettings(ray_cluster.address)))
    assert missing_here == missing_there == 1
    drop = ("seconds", "images_per_second")
    assert {k: v for k, v in there.to_json().items() if k not in drop} == \
        {k: v for k, v in here.to_json().items() if k not in drop}


def test_a_ray_build_on_a_postgresql_catalog(ray_cluster, tmp_path, pg_catalog_url):
    folder = many_photos(tmp_path / "images", 1)
    on_pg = dataclasses.replace(opts(ray_cluster.address), db_url=pg_catalog_url)
    report = build_index([folder], tmp_path / "ix", on_pg)
    assert report.added == 12
    with IndexStore.open(tmp_path / "ix", pg_catalog_url, mode="read") as store:
        assert len(store.catalog.image_rows()) == 12 and store.consistent()


def test_a_ray_build_fills_an_on_disk_index_s_shards_as_ray_tasks(ray_cluster, tmp_path, monkeypatch):
    import retrieval.scaleout.tasks as tasks
    from index.ann.searcher import lists_on_disk
    folder = many_photos(tmp_path / "images", 4)
    ivf = lambda address: dataclasses.replace(opts(address), index_type="IVF4,Flat")  # noqa: E731
    monkeypatch.setenv("RETR_ONDISK_MIN_BYTES", "1")
    build_index([folder], tmp_path / "local", ivf(None))
    with IndexStore.open(tmp_path / "local", mode="read") as store:
        dim = store.dim
    monkeypatch.setenv("RETR_ONDISK_SHARD_BYTES", str(4 * dim * 8))  # eight vectors a shard: six shards
    filled: list[str] = []
    run = tasks.ray_ordered_map

    def spied(fn, items, **kw):
        for path in run(fn, items, **kw):
            filled.append(path)
            yield path

    monkeypatch.setattr(tasks, "ray_ordered_map", spied)
    build_index([folder], tmp_path / "ray", ivf(ray_cluster.address))
    assert len(filled) == 6 and len(set(filled)) == 6  # every shard came back from a Ray task
    for index in ("ray", "local"):
        with IndexStore.open(tmp_path / index, mode="read") as store:
            assert lists_on_disk(store.searcher().cpu) and store.manifest.vectors == 48
    lv = vectors_by_path(tmp_path / "local")
    queries = np.stack([lv[p] for p in sorted(lv)[::4]])
    assert top5(tmp_path / "ray", queries) == top5(tmp_path / "local", queries)
