"""Region crops stay within what the model can resize safely (issue 11, item 7)."""
from PIL import Image

from retrieval.regions.embed import region_crops
from retrieval.regions.proposal import Proposal
from retrieval.regions.settings import RegionSettings
from retrieval.regions.sources.base import RegionSource


class FixedBoxes(RegionSource):
    def __init__(self, boxes):
        super().__init__("fixed")
        self.boxes = boxes

    def propose(self, image, path=None):
        return [Proposal(box) for box in self.boxes]


def test_a_sliver_region_is_dropped_and_a_long_one_within_the_limit_kept():
    image = Image.new("RGB", (2_000, 100))
    sliver, long, square = (0, 0, 1_700, 20), (0, 0, 1_000, 20), (10, 10, 90, 90)
    proposals, crops = region_crops(image, FixedBoxes([sliver, long, square]), RegionSettings())
    assert [p.box for p in proposals] == [(0.0, 0.0, 1_000.0, 20.0), (10.0, 10.0, 90.0, 90.0)]
    assert [c.size for c in crops] == [(1_000, 20), (80, 80)]
