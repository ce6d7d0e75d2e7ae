import csv
import json

import pytest
from typer.testing import CliRunner

from cli.main import app
from retrieval.evaluation.metrics import evaluate_embeddings
from tests.cli.synthetic_index import make_index

runner = CliRunner()
KEYS = ["n", "recall@1", "recall@2", "recall@4", "recall@8", "precision@1", "r_precision", "map@r", "per_class"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture()
def synthetic(tmp_path):
    # spread 1.0 in 16-d: classes overlap, so the metrics are neither 0 nor 1
    return make_index(tmp_path, classes=3, per_class=8, spread=1.0)


def test_recall_from_index_vectors_matches_the_library(synthetic):
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", synthetic.data, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert list(out) == KEYS
    expected = evaluate_embeddings(synthetic.vectors, synthetic.labels, ks=(1, 2, 4, 8))
    assert out["n"] == 24
    assert out["recall@2"] == pytest.approx(expected.recall[2])
    assert out["map@r"] == pytest.approx(expected.map_at_r)
    assert 0 < out["map@r"] < 1
    assert set(out["per_class"]) == {"class0", "class1", "class2"}
    assert out["per_class"]["class1"]["n"] == 8


def test_csv_labels_are_matched_to_catalog_paths(synthetic, tmp_path):
    # relative to the CSV's folder; half of the images, two classes
    rows = [(f"data/class{c}/{i}.png", f"class{c}") for c in (0, 2) for i in range(4)]
    labels = write_csv(tmp_path / "labels.csv", rows)
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", labels, "-k", "1,3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n"] == 8 and "recall@3" in out and "recall@8" not in out
    assert set(out["per_class"]) == {"class0", "class2"}


def test_query_gallery_split(synthetic, tmp_path):
    queries = write_csv(tmp_path / "q.csv", [(p, lab) for p, lab in zip(synthetic.paths[::4], synthetic.labels[::4])])
    gallery = write_csv(tmp_path / "g.csv", [(p, lab) for p, lab in zip(synthetic.paths, synthetic.labels)])
    result = invoke("eval", "recall", "--index", synthetic.index, "--queries", queries, "--gallery", gallery,
                    "-k", "1,2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    q = list(range(0, 24, 4))
    expected = evaluate_embeddings(synthetic.vectors[q], [synthetic.labels[i] for i in q], synthetic.vectors,
                                   synthetic.labels, ks=(1, 2), query_in_gallery=q)
    assert out["n"] == 6
    assert out["recall@1"] == pytest.approx(expected.recall[1])
    assert out["r_precision"] == pytest.approx(expected.r_precision)


def test_clusters_adds_nmi_and_ami_of_the_latest_run(tmp_path):
    synthetic = make_index(tmp_path, classes=3, per_class=6, spread=0.1)
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", synthetic.data, "--clusters")
    assert result.exit_code == 1
    assert "retr cluster" in result.output and "Traceback" not in result.output
    assert invoke("cluster", "--index", synthetic.index, "-k", "3", "--quiet").exit_code == 0
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", synthetic.data, "--clusters",
                    "-k", "1", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["nmi"] == pytest.approx(1.0) and out["ami"] == pytest.approx(1.0)


def test_recall_with_a_model_embeds_the_images(synthetic):
    # the images of a class are identical solid squares: any model finds their own class first
    result = invoke("eval", "recall", synthetic.data, "--model", "test_efficientnet", "--random-weights",
                    "--workers", "0", "--device", "cpu", "-k", "1,5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n"] == 24
    assert out["recall@1"] == pytest.approx(1.0) and out["map@r"] == pytest.approx(1.0)


def test_table_output(synthetic):
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", synthetic.data, "-k", "1")
    assert result.exit_code == 0, result.output
    assert "recall@1" in result.output and "class2" in result.output and "k-NN search" in result.output


@pytest.mark.parametrize("args, message", [
    (["-k", "1,x"], "comma-separated"),
    (["-k", "1,500"], "k=500"),
    (["--model", "test_efficientnet"], "not both"),
    (["--queries", "q.csv"], "go together"),
])
def test_bad_arguments_are_one_line_errors(synthetic, args, message):
    result = invoke("eval", "recall", "--index", synthetic.index, "--labels", synthetic.data, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_eval_index_compares_the_served_index_with_exact_search(tmp_path):
    synthetic = make_index(tmp_path, classes=4, per_class=50, spread=1.0, index_type="hnsw")
    result = invoke("eval", "index", "--index", synthetic.index, "--sample", "50", "-k", "5", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n"] == 200 and out["sample"] == 50 and out["factory"].startswith("HNSW")
    values = [s["value"] for s in out["settings"]]
    assert [s["param"] for s in out["settings"]] == ["ef"] * len(values) and values == sorted(values)
    assert all(0 <= s["recall"] <= 1 and s["qps"] > 0 for s in out["settings"])
    assert out["settings"][-1]["recall"] >= 0.95  # ef=512 on 200 vectors is all but exhaustive


def test_eval_index_on_a_flat_index_is_exact(synthetic):
    result = invoke("eval", "index", "--index", synthetic.index, "--sample", "10", "-k", "3")
    assert result.exit_code == 0, result.output
    assert "(served)" in result.output and "1.0000" in result.output
