"""eotensor.dataset (readers.py, datasets.py): patches images written here and by PatchesExtraction read back
exactly (dtype kept, rectangular and single-band), streaming equal to in memory, statistics against NumPy, epochs
that are permutations, the talk's snippet through tf.data, and the one-line errors."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eotensor.apps.patches_extraction import PatchesExtraction
from eotensor.dataset import (
    Buffer,
    Dataset,
    DatasetFromPatchesImages,
    IteratorBase,
    PatchesImagesReader,
    PatchesReaderBase,
    RandomIterator,
)
from eotensor.errors import InputFileError, ParameterError
from eotensor.io.vector import write_points
from eotensor.testing import write_raster

LEFT, TOP = 300000.0, 4900020.0
"""write_raster's default upper-left corner."""


def _write_patches(path, patches):
    """A patches image of ``patches`` (n, h, w, bands): patch k in rows [k*h, (k+1)*h), as PatchesExtraction."""
    n, h, w, c = patches.shape
    image = np.zeros((c, n * h, w), patches.dtype)
    for k in range(n):
        for b in range(c):
            image[b, k * h:(k + 1) * h, :] = patches[k, :, :, b]
    return write_raster(path, image)


def _random_patches(rng, n, shape, dtype):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is None:
        return rng.normal(0, 1000, (n, *shape)).astype(dtype)
    return rng.integers(info.min, info.max, (n, *shape), endpoint=True).astype(dtype)


@st.composite
def datasets(draw):
    """Two sources (their own dtype, patch size and band count), 1 to 3 files of 1 to 6 patches each."""
    files = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    sources = {}
    for key in ("a", "b"):
        dtype = draw(st.sampled_from(["uint8", "int16", "uint16", "float32"]))
        shape = (draw(st.integers(1, 7)), draw(st.integers(1, 7)), draw(st.integers(1, 3)))
        sources[key] = dtype, shape
    return files, sources, draw(st.integers(0, 2**31))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_readers_return_the_patches_written_and_streaming_equals_in_memory(case):
    files, sources, seed = case
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        written = {key: [_random_patches(rng, n, shape, dtype) for n in files] for key, (dtype, shape) in sources.items()}
        names = {key: [_write_patches(os.path.join(tmp, f"{key}{k}.tif"), p) for k, p in enumerate(parts)]
                 for key, parts in written.items()}
        heights = {key: shape[0] for key, (_, shape) in sources.items()}
        memory = PatchesImagesReader(names, patch_height=heights)
        streaming = PatchesImagesReader(names, use_streaming=True, patch_height=heights)
        everything = {key: np.concatenate(parts) for key, parts in written.items()}
        assert memory.get_size() == streaming.get_size() == sum(files)
        for i in range(sum(files)):
            for reader in (memory, streaming):
                sample = reader.get_sample(i)
                assert sorted(sample) == ["a", "b"]
                for key, expected in everything.items():
                    assert sample[key].dtype == expected.dtype and sample[key].shape == expected[i].shape
                    np.testing.assert_array_equal(sample[key], expected[i])
        in_memory, streamed = memory.get_stats(), streaming.get_stats()
        for key, patches in everything.items():
            values = patches.reshape(-1, patches.shape[-1]).astype(np.float64)
            reference = {"min": values.min(0), "max": values.max(0), "mean": values.mean(0), "std": values.std(0)}
            for name, expected in reference.items():
                np.testing.assert_array_equal(in_memory[key][name], streamed[key][name])
                np.testing.assert_allclose(streamed[key][name], expected, rtol=1e-9, atol=1e-9 * np.abs(values).max())
            assert in_memory[key]["min"].dtype == patches.dtype and in_memory[key]["std"].dtype == np.float64
        streaming.close()


def test_square_patches_are_the_default_and_single_band_keeps_a_band_axis(tmp_path):
    rng = np.random.default_rng(0)
    patches = _random_patches(rng, 5, (4, 4, 1), "int16")
    path = _write_patches(tmp_path / "p.tif", patches)
    for streaming in (False, True):
        reader = PatchesImagesReader({"x": [path]}, use_streaming=streaming)
        assert reader.get_size() == 5
        assert reader.get_sample(3)["x"].shape == (4, 4, 1)
        np.testing.assert_array_equal(reader.get_sample(3)["x"], patches[3])


def test_patches_written_by_patches_extraction_read_back_with_their_dtype(tmp_path):
    rng = np.random.default_rng(3)
    image = rng.integers(-3000, 3000, (3, 60, 50)).astype(np.int16)
    labels = rng.integers(0, 5, (1, 60, 50)).astype(np.uint8)
    a, b = write_raster(tmp_path / "a.tif", image), write_raster(tmp_path / "b.tif", labels)
    rows, cols = rng.integers(5, 54, 21), rng.integers(5, 44, 21)
    vec = write_points(str(tmp_path / "p.gpkg"), LEFT + (cols + 0.5) * 10, TOP - (rows + 0.5) * 10,
                       {"class": np.arange(21)}, "EPSG:32631", "vec")
    PatchesExtraction(source1_il=a, source1_out=(str(tmp_path / "x.tif"), "int16"), source1_patchsizex=8,
                      source1_patchsizey=6, source2_il=b, source2_out=(str(tmp_path / "y.tif"), "uint8"),
                      source2_patchsizex=8, source2_patchsizey=6, vec=vec, field="class")
    files = {"x": [str(tmp_path / "x.tif")], "y": [str(tmp_path / "y.tif")]}
    with pytest.raises(InputFileError, match=r'filenames_dict\["x"\]\[0\]: .*x.tif" is 126 rows high, not a '
                                             r"multiple of the patch height 8 \(its width"):
        PatchesImagesReader(files)  # 6-row patches read as square 8x8 ones
    for streaming in (False, True):
        reader = PatchesImagesReader(files, use_streaming=streaming, patch_height=6)
        assert reader.get_size() == 21
        for i, (r, c) in enumerate(zip(rows, cols)):  # a patch of even size starts half a patch before the point
            sample = reader.get_sample(i)
            assert sample["x"].dtype == np.int16 and sample["y"].dtype == np.uint8
            np.testing.assert_array_equal(sample["x"], image[:, r - 3:r + 3, c - 4:c + 4].transpose(1, 2, 0))
            np.testing.assert_array_equal(sample["y"], labels[:, r - 3:r + 3, c - 4:c + 4].transpose(1, 2, 0))


def test_scalars_give_each_patch_its_file_value(tmp_path):
    rng = np.random.default_rng(1)
    parts = [_random_patches(rng, n, (3, 3, 2), "uint8") for n in (2, 3)]
    files = {"x": [_write_patches(tmp_path / f"x{k}.tif", p) for k, p in enumerate(parts)]}
    for streaming in (False, True):
        reader = PatchesImagesReader(files, streaming, scalar_dict={"year": [2019, 2020]})
        assert [int(reader.get_sample(i)["year"]) for i in range(5)] == [2019, 2019, 2020, 2020, 2020]
        assert sorted(reader.get_stats()) == ["x"]


def test_a_streaming_reader_pickles_and_reads_in_the_copy(tmp_path):
    patches = _random_patches(np.random.default_rng(2), 4, (2, 2, 1), "int16")
    reader = PatchesImagesReader({"x": [_write_patches(tmp_path / "x.tif", patches)]}, use_streaming=True)
    reader.get_sample(0)  # files open
    copy = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(copy.get_sample(2)["x"], patches[2])


def _numbered(tmp_path, sizes):
    """One source whose patch i (over all files) is filled with i: samples tell their index."""
    names, start = [], 0
    for k, n in enumerate(sizes):
        values = np.arange(start, start + n, dtype=np.int32)
        names.append(_write_patches(tmp_path / f"n{k}.tif", np.broadcast_to(values[:, None, None, None], (n, 2, 2, 1))
                                    .copy()))
        start += n
    return {"x": names}


def test_random_iterator_epochs_are_seeded_permutations(tmp_path):
    reader = PatchesImagesReader(_numbered(tmp_path, [7]))
    first, second = RandomIterator(reader, seed=5), RandomIterator(reader, seed=5)
    drawn = [next(first) for _ in range(70)]
    assert drawn == [next(second) for _ in range(70)]
    epochs = [drawn[e * 7:(e + 1) * 7] for e in range(10)]
    assert all(sorted(epoch) == list(range(7)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1


@pytest.mark.parametrize("buffer_length, max_nb_of_samples", [(4, None), (128, None), (3, 7), (10, 7)])
def test_an_epoch_of_the_dataset_visits_every_sample_once(tmp_path, buffer_length, max_nb_of_samples):
    files = _numbered(tmp_path, [4, 6])
    ds = DatasetFromPatchesImages(files, use_streaming=True, buffer_length=buffer_length,
                                  max_nb_of_samples=max_nb_of_samples, seed=1)
    size = max_nb_of_samples or 10
    assert ds.size == size
    for _ in range(5):
        epoch = [int(ds.read_one_sample()["x"][0, 0, 0]) for _ in range(size)]
        assert sorted(epoch) == list(range(size))
    assert ds.get_total_wait_in_seconds() >= 0.0
    assert ds.output_types == {"x": np.dtype(np.int32)} and ds.output_shapes == {"x": (2, 2, 1)}


def test_the_dataset_stats_are_the_reader_stats(tmp_path):
    files = _numbered(tmp_path, [3, 2])
    ds = DatasetFromPatchesImages(files, buffer_length=2)
    stats = ds.get_stats()
    assert (stats["x"]["min"][0], stats["x"]["max"][0], stats["x"]["mean"][0]) == (0, 4, 2.0)
    np.testing.assert_allclose(stats["x"]["std"], [np.std(np.arange(5))])


class _InOrder(IteratorBase):
    """Samples in file order, epoch after epoch."""

    def __init__(self, patches_reader):
        super().__init__(patches_reader)
        self.count = -1

    def __next__(self):
        self.count += 1
        return self.count % self.size


class _FailingReader(PatchesReaderBase):
    """A reader whose sample 3 cannot be read."""

    def get_sample(self, index):
        if index == 3:
            raise InputFileError("filenames_dict: sample 3 is unreadable")
        return {"x": np.full((1, 1, 1), index)}

    def get_stats(self):
        return {}

    def get_size(self):
        return 6


def test_an_error_in_the_miner_reaches_the_consumer_and_the_next_read_mines_again():
    ds = Dataset(_FailingReader(), buffer_length=2, iterator_cls=_InOrder)
    assert [int(ds.read_one_sample()["x"][0, 0, 0]) for _ in range(2)] == [0, 1]
    with pytest.raises(InputFileError, match="sample 3 is unreadable"):
        ds.read_one_sample()  # the second fill, [2, 3], failed on 3
    assert [int(ds.read_one_sample()["x"][0, 0, 0]) for _ in range(4)] == [2, 4, 5, 0]


def test_older_otbtf_iterator_keyword_takes_any_iterator(tmp_path):
    ds = Dataset(PatchesImagesReader(_numbered(tmp_path, [2, 3])), 2, Iterator=_InOrder)
    assert [int(ds.read_one_sample()["x"][0, 0, 0]) for _ in range(7)] == [0, 1, 2, 3, 4, 0, 1]
    with pytest.raises(ParameterError, match="iterator_cls: given twice"):
        Dataset(PatchesImagesReader(_numbered(tmp_path, [2])), 2, _InOrder, Iterator=_InOrder)


def test_buffer():
    buffer = Buffer(2)
    buffer.add(1)
    assert (buffer.size(), buffer.is_complete()) == (1, False)
    buffer.add(2)
    assert buffer.is_complete()
    with pytest.raises(ValueError, match="full"):
        buffer.add(3)


def test_one_line_errors(tmp_path):
    rng = np.random.default_rng(4)
    x1 = _write_patches(tmp_path / "x1.tif", _random_patches(rng, 3, (4, 4, 2), "int16"))
    x2 = _write_patches(tmp_path / "x2.tif", _random_patches(rng, 2, (4, 4, 2), "int16"))
    y1 = _write_patches(tmp_path / "y1.tif", _random_patches(rng, 3, (4, 4, 1), "uint8"))
    y2 = _write_patches(tmp_path / "y2.tif", _random_patches(rng, 5, (4, 4, 1), "uint8"))
    x3 = _write_patches(tmp_path / "x3.tif", _random_patches(rng, 2, (4, 4, 3), "int16"))
    odd = write_raster(tmp_path / "odd.tif", np.zeros((1, 10, 4), np.uint8))
    cases = [
        (dict(filenames_dict={"x": [x1, x2], "y": [y1]}), ParameterError,
         r'filenames_dict\["y"\]: 1 value\(s\) but source "x" has 2 patches image\(s\)'),
        (dict(filenames_dict={"x": [x1, x2], "y": [y1, y2]}), InputFileError,
         r'filenames_dict\["y"\]\[1\]: ".*y2.tif" holds 5 patches but ".*x2.tif" of source "x" holds 2'),
        (dict(filenames_dict={"x": [odd]}), InputFileError,
         r'filenames_dict\["x"\]\[0\]: ".*odd.tif" is 10 rows high, not a multiple of the patch height 4'),
        (dict(filenames_dict={"x": [x1, x3]}), InputFileError, r"3-band int16 patches but the first file"),
        (dict(filenames_dict={"x": [x1]}, scalar_dict={"s": [1, 2]}), ParameterError,
         r'scalar_dict\["s"\]: 2 value\(s\)'),
        (dict(filenames_dict={"x": [str(tmp_path / "none.tif")]}), InputFileError,
         r'filenames_dict\["x"\]\[0\]: input file ".*none.tif" does not exist'),
        (dict(filenames_dict={"x": [x1]}, filename_dict={"x": [x1]}), ParameterError, "given twice"),
        (dict(filenames_dict={}), ParameterError, "at least one source"),
        (dict(filenames_dict={"x": [x1]}, patch_height={"z": 4}), ParameterError, "patch_height: z is not a source"),
        (dict(filenames_dict={"x": [x1]}, patch_height=0), ParameterError, "positive integer"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message) as caught:
            PatchesImagesReader(**kwargs)
        assert "\n" not in str(caught.value)
    with pytest.raises(IndexError, match="out of range: the reader has 3 samples"):
        PatchesImagesReader({"x": [x1]}).get_sample(3)


def test_importing_the_dataset_package_does_not_import_tensorflow():
    code = ("import sys, eotensor.dataset as d; d.DatasetFromPatchesImages; d.PatchesImagesReader; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def _talk_files(directory):
    rng = np.random.default_rng(7)
    for k, n in ((1, 11), (2, 9)):
        _write_patches(os.path.join(directory, f"x{k}.tif"), _random_patches(rng, n, (16, 16, 4), "int16"))
        _write_patches(os.path.join(directory, f"y{k}.tif"), _random_patches(rng, n, (16, 16, 1), "uint8"))


@pytest.mark.tf
def test_the_talk_snippet_runs_and_batches_have_the_right_shapes(tmp_path, monkeypatch):
    _talk_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    files_dict = {"x": ["x1.tif", "x2.tif"], "y": ["y1.tif", "y2.tif"]}
    ds = DatasetFromPatchesImages(filename_dict=files_dict, use_streaming=True)
    tf_ds = ds.get_tf_dataset(batch_size=8)
    for _ in range(2):  # each pass is an epoch: 20 samples, 2 full batches of 8
        batches = list(tf_ds)
        assert len(batches) == 2
        for batch in batches:
            assert (tuple(batch["x"].shape), batch["x"].dtype.name) == ((8, 16, 16, 4), "int16")
            assert (tuple(batch["y"].shape), batch["y"].dtype.name) == ((8, 16, 16, 1), "uint8")
    last = list(ds.get_tf_dataset(batch_size=8, drop_remainder=False))
    assert [int(b["x"].shape[0]) for b in last] == [8, 8, 4]


@pytest.mark.tf
def test_targets_keys_split_inputs_and_targets(tmp_path):
    _talk_files(tmp_path)
    files = {"x": [str(tmp_path / "x1.tif")], "y": [str(tmp_path / "y1.tif")]}
    ds = DatasetFromPatchesImages(files, buffer_length=11, max_nb_of_samples=10)

    def preprocess(example):
        return {"x": example["x"], "y": example["y"], "onehot": example["y"] % 2}

    with pytest.warns(UserWarning, match="batch size is 5 but the dataset buffer holds 10"):
        tf_ds = ds.get_tf_dataset(5, preprocessing_fn=preprocess, targets_keys=["y", "onehot"])
    inputs, targets = next(iter(tf_ds))
    assert sorted(inputs) == ["x"] and sorted(targets) == ["onehot", "y"]
    assert tuple(targets["y"].shape) == (5, 16, 16, 1)
    with pytest.raises(ParameterError, match=r"targets_keys: 'labels' not in the dataset \(keys: 'x', 'y'\)"):
        ds.get_tf_dataset(2, targets_keys=["labels"])
    with pytest.raises(ParameterError, match="targets_keys: 'labels' not in the preprocessed examples"):
        ds.get_tf_dataset(2, preprocessing_fn=preprocess, targets_keys=["labels"])


@pytest.mark.tf
def test_scalars_go_through_tf_data_as_numbers_and_strings(tmp_path):
    files = _numbered(tmp_path, [2, 2])
    ds = DatasetFromPatchesImages(files, scalar_dict={"year": [2019, 2020], "tile": ["T31TCJ", "T31TDJ"]},
                                  buffer_length=4, seed=3)
    with pytest.warns(UserWarning, match="buffer holds 4 samples"):
        batch = next(iter(ds.get_tf_dataset(4)))
    index = batch["x"].numpy()[:, 0, 0, 0]
    assert batch["year"].numpy().tolist() == [2019 + int(i >= 2) for i in index]
    assert batch["tile"].numpy().tolist() == [b"T31TDJ" if i >= 2 else b"T31TCJ" for i in index]


@pytest.mark.tf
def test_to_tfrecords_writes_every_sample_once_and_tfrecords_reads_them_back(tmp_path):
    from eotensor.dataset import DatasetFromPatchesImages, TFRecords

    rng = np.random.default_rng(7)
    x, y = _random_patches(rng, 9, (8, 8, 3), np.int16), _random_patches(rng, 9, (8, 8, 1), np.uint8)
    files = {"x": [_write_patches(tmp_path / "x.tif", x)], "y": [_write_patches(tmp_path / "y.tif", y)]}
    dataset = DatasetFromPatchesImages(filenames_dict=files, seed=1)
    dataset.to_tfrecords(tmp_path / "records", n_samples_per_shard=4, drop_remainder=False)
    batches = list(TFRecords(str(tmp_path / "records")).read(batch_size=9, target_keys=["y"], drop_remainder=False))
    assert len(batches) == 1
    inputs, targets = batches[0]
    got_x, got_y = inputs["x"].numpy(), targets["y"].numpy()
    assert got_x.dtype == np.int16 and got_y.dtype == np.uint8
    order = [int(np.flatnonzero((x == sample).all(axis=(1, 2, 3)))[0]) for sample in got_x]
    assert sorted(order) == list(range(9))  # every sample once
    np.testing.assert_array_equal(got_y, y[order])  # and each input with its own target
