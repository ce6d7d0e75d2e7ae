"""The built-in region sources, registered once by name."""
from __future__ import annotations

from retrieval.regions.sources.coco import CocoSource
from retrieval.regions.sources.detectors import DetectorSource
from retrieval.regions.sources.grid import GridSource, WindowSource
from retrieval.regions.sources.mtcnn import MTCNNSource
from retrieval.regions.sources.base import register_source

register_source("grid", GridSource.from_arg, "n x n grid cells at each pyramid level (grid:1,2,3,4)")
register_source("windows", WindowSource.from_arg,
                "half-overlapping square windows, sides as fractions of the shorter side (windows:0.6,0.4,0.25)")
register_source("mtcnn", MTCNNSource.from_arg, "faces (MTCNN, weights bundled with facenet-pytorch)")
register_source("coco", CocoSource.from_arg, "objects and polygons from a COCO annotation file (coco:FILE)")
register_source("fasterrcnn", DetectorSource.factory("fasterrcnn"), "torchvision Faster R-CNN v2 (COCO objects)")
register_source("retinanet", DetectorSource.factory("retinanet"), "torchvision RetinaNet v2 (COCO objects)")
register_source("maskrcnn", DetectorSource.factory("maskrcnn"),
                "torchvision Mask R-CNN v2 (COCO objects, masks blank the background)")
