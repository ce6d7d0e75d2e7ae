import builtins
import json
import re

import pytest
from typer.testing import CliRunner

from cli.main import app
from index.catalog.database import Catalog
from index.catalog.clusters import latest_members
from tests.cli.synthetic_index import make_index

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def synthetic(tmp_path):
    return make_index(tmp_path, classes=3, per_class=6, spread=0.1)


def test_cluster_json_and_catalog(synthetic):
    result = invoke("cluster", "--index", synthetic.index, "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == ["k", "method", "loss", "silhouette", "full_silhouette", "criterion", "clusters"]
    assert out["k"] == 3 and out["method"] == "fasterpam" and out["silhouette"] > 0.8
    assert [list(c) for c in out["clusters"]][0] == ["id", "medoid", "size", "members"]
    label_of = dict(zip(synthetic.paths, synthetic.labels))
    for c in out["clusters"]:
        assert c["members"][0] == c["medoid"] and c["size"] == len(c["members"]) == 6
        assert len({label_of[p] for p in c["members"]}) == 1  # well separated classes are recovered

    catalog = Catalog.for_index(synthetic.index)
    members = latest_members(catalog)
    catalog.close()
    id_of = {p: r for p, r in zip(synthetic.paths, range(1, 19))}  # ids in insertion order
    medoids = {m.image_id for m in members if m.is_medoid}
    assert len(members) == 18 and medoids == {id_of[c["medoid"]] for c in out["clusters"]}

    info = json.loads(invoke("index", "info", "--index", synthetic.index, "--json").stdout)
    assert info["cluster_run"]["k"] == 3 and info["cluster_run"]["clusters"] == 3
    out = invoke("index", "info", "--index", synthetic.index).stdout
    table = dict(line.split(None, 1) for line in out.splitlines())
    assert table["cluster_run"].startswith(f"k=3 fasterpam over 18 images, loss {info['cluster_run']['loss']:.4g}, "
                                           f"silhouette {info['cluster_run']['silhouette']:.3f} (")


def test_k_range_html_and_elbow(synthetic, tmp_path):
    html = tmp_path / "report" / "clusters.html"
    result = invoke("cluster", "--index", synthetic.index, "--k-min", "2", "--k-max", "5", "--html", html, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["k"] == 3
    assert [r["k"] for r in out["per_k"]] == [2, 3, 4, 5]
    assert max(out["per_k"], key=lambda r: r["silhouette"])["k"] == 3
    assert max(out["per_k"], key=lambda r: r["full_silhouette"])["k"] == 3 == out["k"]
    assert out["criterion"] == "full_silhouette" and out["warning"] is None
    elbow = tmp_path / "report" / "clusters-elbow.png"
    assert out["elbow"] == str(elbow) and elbow.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = html.read_text()
    sections = re.findall(r"<section>(.*?)</section>", text, flags=re.S)
    assert len(sections) == 3
    for section in sections:
        captions = re.findall(r"<figcaption>([^<]*)<br>", section)
        assert captions[0] == "medoid" and all(c.startswith("similarity") for c in captions[1:])
        assert section.count('src="data:image/jpeg;base64,') == 6  # self-contained thumbnails


def test_table_output(synthetic):
    result = invoke("cluster", "--index", synthetic.index, "--k-min", "2", "--k-max", "3")
    assert result.exit_code == 0, result.output
    assert "<- best" in result.output and "medoid silhouette" in result.output
    assert (synthetic.index / "cluster-elbow.png").exists()


def test_missing_backend_is_a_one_line_install_hint(synthetic, monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn_extra"):
            raise ModuleNotFoundError("No module named 'sklearn_extra'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    result = invoke("cluster", "--index", synthetic.index, "-k", "2", "--method", "pam")
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert "pip install" in result.output and "scikit-learn-extra" in result.output


def test_beyond_memory_says_so_and_sample_works(synthetic, monkeypatch):
    import retrieval.clustering.kmedoids
    monkeypatch.setattr(retrieval.clustering.kmedoids, "available_memory", lambda: 2 * 10 * 10 * 4)
    result = invoke("cluster", "--index", synthetic.index, "-k", "3")
    assert result.exit_code == 1 and "--sample" in result.output
    result = invoke("cluster", "--index", synthetic.index, "-k", "3", "--sample", "10", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert sum(c["size"] for c in out["clusters"]) == 18
    info = json.loads(invoke("index", "info", "--index", synthetic.index, "--json").stdout)
    assert info["cluster_run"]["sampled"] is True


@pytest.mark.parametrize("args, message", [
    (["-k", "3", "--k-min", "2"], "not both"),
    ([], "-k K"),
    (["--k-min", "5", "--k-max", "2"], "larger than"),
    (["-k", "50"], "k=50"),
    (["-k", "2", "--method", "kmeans"], "known: alternate, fasterpam, pam"),
])
def test_bad_arguments(synthetic, args, message):
    result = invoke("cluster", "--index", synthetic.index, *args)
    assert result.exit_code == 1 and message in result.output


def test_no_index(tmp_path):
    result = invoke("cluster", "--index", tmp_path / "nothing", "-k", "2")
    assert result.exit_code == 1 and "no index" in result.output


def test_cluster_takes_the_writer_lock_it_stores_a_run(synthetic):
    from index.lock import FolderLock
    lock = FolderLock(synthetic.index, "retr index build")
    lock.acquire()
    try:
        result = invoke("cluster", "--index", synthetic.index, "-k", "3", "--json")
    finally:
        lock.release()
    assert result.exit_code == 1
    assert "another retr process" in result.output and "`retr index build`" in result.output
    catalog = Catalog.for_index(synthetic.index)
    assert latest_members(catalog) is None  # no run was stored
    catalog.close()
