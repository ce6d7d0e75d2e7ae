import json
import subprocess
import sys

import pytest

from index.errors import RetrError
from retrieval.regions.sources import SOURCES, known_sources, make_source, parse_spec
from retrieval.regions.sources.base import RegionSource, SourceOptions
from tests.conftest import DATA

SPECS = {"coco": f"coco:{DATA / 'regions_coco.json'}"}  # sources that need an argument


@pytest.mark.parametrize("name", SOURCES.names())
def test_every_source_is_made_from_its_name_without_loading_a_model(name):
    source = make_source(SPECS.get(name, name), SourceOptions(download=False, device="cpu"))
    assert isinstance(source, RegionSource)
    assert source.key().startswith(name)
    assert known_sources()[name] == SOURCES.get(name).help and SOURCES.get(name).help


def test_names_keep_registration_order_and_an_unknown_one_lists_them():
    assert list(known_sources()) == ["grid", "windows", "mtcnn", "coco", "fasterrcnn", "retinanet", "maskrcnn"]
    with pytest.raises(RetrError, match="unknown region source 'bogus'; known: coco, fasterrcnn, grid"):
        make_source("bogus:1,2")


def test_a_spec_is_a_name_and_an_optional_argument():
    assert parse_spec(" Grid:1,2") == ("grid", "1,2")
    assert parse_spec("coco:C:/a.json") == ("coco", "C:/a.json")
    assert parse_spec("mtcnn") == ("mtcnn", None)


def test_the_names_and_help_need_no_torch():
    code = ("import json, sys; from retrieval.regions.sources import known_sources; names = list(known_sources()); "
            "print(json.dumps([names, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'timm'))]))")
    names, heavy = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True).stdout)
    assert names == SOURCES.names() and heavy == []
