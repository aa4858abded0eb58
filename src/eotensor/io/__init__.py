"""Raster input and output, one job per module.

* :mod:`~eotensor.io.raster`: inputs, image lists read window by window (band selection, complex bands);
* :mod:`~eotensor.io.extended`: OTB extended filenames (outputs: box, creation options, no-data, format
  from the extension; inputs: ``bands``);
* :mod:`~eotensor.io.pixeltypes`: output pixel types and OTB-like casting;
* :mod:`~eotensor.io.atomic`: outputs under a temporary name, renamed when complete (every writer's base);
* :mod:`~eotensor.io.geotiff`: the streamed GeoTIFF writer and the one block-size rule;
* :mod:`~eotensor.io.zarr`: Zarr stores (``-out map.zarr``), written by the client or by Dask workers.
"""
