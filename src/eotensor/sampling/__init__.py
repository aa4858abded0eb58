"""Sampling: where patches and points come from, as pure functions and streamed passes over rasters.

One module per job, each called by one thin app in :mod:`eotensor.apps` and tested directly:

* :mod:`~eotensor.sampling.extraction`: patches around points, from several sources (PatchesExtraction);
* :mod:`~eotensor.sampling.selection`: grid candidates, validity mask, split scheduler (PatchesSelection);
* :mod:`~eotensor.sampling.labels`: per-class steps over a label image (LabelImageSampleSelection);
* :mod:`~eotensor.sampling.polygons`: polygon pixel counts by rasterising (DensePolygonClassStatistics).

Whole-image passes run as full-width strips (:func:`eotensor.engine.tiling.strip_plan`) through the named
executors (:func:`eotensor.engine.execute.run_tiles`), so memory stays bounded whatever the image size.
"""
