"""Bad inputs are one-line errors or recorded skips; splits hold out what they say."""
import numpy as np
import pytest
from PIL import Image

from index.errors import RetrError
from retrieval.train.data import ImageSet, drop_small_classes, read_images, split


def write(path, colour=(200, 10, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def test_class_with_one_image_is_skipped_and_recorded(tmp_path):
    for i in range(3):
        write(tmp_path / "a" / f"{i}.png")
        write(tmp_path / "b" / f"{i}.png")
    write(tmp_path / "lonely" / "0.png")
    images = drop_small_classes(read_images(tmp_path))
    assert len(images) == 6 and images.classes == ("a", "b")
    assert sorted(images.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert {images.classes[label] for label in images.labels} == {"a", "b"}
    assert images.skipped == ({"class": "lonely", "reason": "only 1 image(s); a class needs 2 for positive pairs"},)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(RetrError, match="holds no class folders with images"):
        read_images(tmp_path)
    with pytest.raises(RetrError, match="holds no images"):
        read_images(tmp_path, labelled=False)


def test_csv_with_missing_files_records_them(tmp_path):
    for i in range(2):
        write(tmp_path / f"x{i}.png")
    (tmp_path / "labels.csv").write_text("path,label\nx0.png,cat\nx1.png,cat\ngone.png,dog\n")
    images = read_images(tmp_path / "labels.csv")
    assert len(images) == 2
    assert images.skipped == ({"path": str(tmp_path / "gone.png"), "reason": "file listed in the CSV does not exist"},)
    (tmp_path / "bad.csv").write_text("path,label\nnope.png,cat\n")
    with pytest.raises(RetrError, match="none of the 1 files"):
        read_images(tmp_path / "bad.csv")


def test_unlabelled_folder_for_simclr(tmp_path):
    write(tmp_path / "a.png")
    write(tmp_path / "deep" / "er" / "b.png")
    images = read_images(tmp_path, labelled=False)
    assert len(images) == 2 and not images.labelled and (images.labels == -1).all()


def test_one_class_left_is_an_error():
    images = ImageSet.from_labels(["p"] * 3, ["a", "a", "b"])
    with pytest.raises(RetrError, match="at least 2 classes"):
        drop_small_classes(images)


def synthetic(n_classes=6, per_class=10):
    names = [f"c{c}" for c in range(n_classes) for _ in range(per_class)]
    return ImageSet.from_labels(list(range(len(names))), names)


def test_class_split_is_disjoint():
    train, val = split(synthetic(), "classes", 0.34, seed=0)
    assert set(train.labels).isdisjoint(set(val.labels))
    assert len(set(val.labels)) == 2 and len(train) + len(val) == 60


def test_image_split_holds_out_a_share_of_every_class():
    train, val = split(synthetic(), "images", 0.2, seed=0)
    assert len(val) == 12 and (np.bincount(val.labels) == 2).all()
    assert set(train.items).isdisjoint(set(val.items))


def test_split_errors():
    with pytest.raises(RetrError, match="unknown --split"):
        split(synthetic(), "random")
    with pytest.raises(RetrError, match="2 training and 2 validation classes"):
        split(synthetic(n_classes=3), "classes", 0.3)
    assert split(synthetic(), "none")[1] is None
