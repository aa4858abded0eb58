"""TFRecords in OTBTF's layout: lossless round trips, the exact JSON files, read() batches, interoperability."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from eotensor.dataset.tfrecords import TFRecords
from eotensor.errors import InputFileError, OutputFileError, ParameterError

pytestmark = pytest.mark.tf

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64", "complex64", "complex128"]


class FakeDataset:
    """OTBTF's Dataset interface over a list of sample dicts, read in order."""

    def __init__(self, samples):
        self.samples = samples
        self.output_types = {key: value.dtype for key, value in samples[0].items()}
        self.output_shapes = {key: value.shape for key, value in samples[0].items()}
        self.read = 0

    def get_size(self):
        return len(self.samples)

    def read_one_sample(self):
        sample = self.samples[self.read % len(self.samples)]
        self.read += 1
        return sample


def extreme_values(dtype, shape, rng):
    """Random values of ``dtype`` including its extremes (and NaN, infinities for floats)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if dtype.kind == "b":
        values = rng.integers(0, 2, size).astype(bool)
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, size, dtype=dtype, endpoint=True)
        values[:2] = info.min, info.max
    else:
        real = np.finfo(dtype).dtype if dtype.kind == "c" else dtype
        info = np.finfo(real)
        values = (rng.standard_normal(size) * 1e3).astype(real)
        values[:5] = info.min, info.max, np.nan, np.inf, info.tiny
        if dtype.kind == "c":
            real_part, values = values, values.astype(dtype)
            values.imag = real_part[::-1]
    return values.reshape(shape)


def make_samples(n, rng, dtypes=("int16", "uint8")):
    return [{"x": extreme_values(dtypes[0], (4, 3, 2), rng), "y": extreme_values(dtypes[1], (4, 3, 1), rng)}
            for _ in range(n)]


def read_all(records, target_keys=("y",), **kwargs):
    inputs, targets = [], []
    for x, y in records.read(1, list(target_keys), **kwargs):
        inputs.append({key: value.numpy()[0] for key, value in x.items()})
        targets.append({key: value.numpy()[0] for key, value in y.items()})
    return inputs, targets


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_is_lossless_for_every_dtype(dtype, tmp_path):
    rng = np.random.default_rng(DTYPES.index(dtype))
    samples = make_samples(5, rng, (dtype, "float64"))
    TFRecords(tmp_path).ds2tfrecord(FakeDataset(samples), n_samples_per_shard=2, drop_remainder=False)
    records = TFRecords(tmp_path)
    assert records.output_types == {"x": dtype, "y": "float64"}
    inputs, targets = read_all(records)
    assert len(inputs) == 5
    for sample, x, y in zip(samples, inputs, targets, strict=True):
        assert x["x"].dtype == np.dtype(dtype) and y["y"].dtype == np.float64
        assert x["x"].shape == sample["x"].shape and x["x"].tobytes() == sample["x"].tobytes()
        assert y["y"].tobytes() == sample["y"].tobytes()


@pytest.mark.parametrize(("drop_remainder", "counts"), [(True, [3, 3]), (False, [3, 3, 1])])
def test_shards_hold_n_samples_each_and_the_remainder_only_when_asked(drop_remainder, counts, tmp_path):
    import tensorflow as tf

    samples = make_samples(7, np.random.default_rng(1))
    records = TFRecords(tmp_path / "records")
    records.ds2tfrecord(FakeDataset(samples), n_samples_per_shard=3, drop_remainder=drop_remainder)
    names = sorted(p.name for p in (tmp_path / "records").iterdir())
    assert names == sorted([f"{i}.records" for i in range(len(counts))] + ["output_shapes.json", "output_types.json"])
    assert [sum(1 for _ in tf.data.TFRecordDataset(str(tmp_path / "records" / f"{i}.records")))
            for i in range(len(counts))] == counts
    inputs, _ = read_all(TFRecords(tmp_path / "records"))
    for sample, x in zip(samples, inputs, strict=False):  # shards read in order 0, 1, 2
        np.testing.assert_array_equal(x["x"], sample["x"])
    assert len(inputs) == sum(counts)


def test_json_files_have_otbtfs_exact_text(tmp_path):
    samples = [{"x": np.zeros((4, 3, 2), np.uint16), "lab": np.zeros((1,), np.float32)}]
    TFRecords(tmp_path).ds2tfrecord(FakeDataset(samples), n_samples_per_shard=1)
    assert (tmp_path / "output_types.json").read_text() == '{\n    "x": "uint16",\n    "lab": "float32"\n}'
    assert (tmp_path / "output_shapes.json").read_text() == (
        '{\n    "x": [\n        4,\n        3,\n        2\n    ],\n    "lab": [\n        1\n    ]\n}')


def test_read_batches_shapes_dtypes_and_target_split(tmp_path):
    samples = make_samples(10, np.random.default_rng(2))
    TFRecords(tmp_path).ds2tfrecord(FakeDataset(samples), n_samples_per_shard=5)
    records = TFRecords(tmp_path)
    batches = list(records.read(4, ["y"], drop_remainder=False))
    assert [x["x"].shape[0] for x, _ in batches] == [4, 4, 2]
    x, y = batches[0]
    assert set(x) == {"x"} and set(y) == {"y"}
    assert tuple(x["x"].shape) == (4, 4, 3, 2) and x["x"].dtype.name == "int16"
    assert tuple(y["y"].shape) == (4, 4, 3, 1) and y["y"].dtype.name == "uint8"
    np.testing.assert_array_equal(x["x"].numpy(), np.stack([s["x"] for s in samples[:4]]))
    assert [x["x"].shape[0] for x, _ in records.read(4, ["y"])] == [4, 4]
    x, y = next(iter(records.read(2, ["x", "y"])))
    assert x == {} and set(y) == {"x", "y"}


def test_shuffle_visits_every_sample_once_and_preprocessing_gets_kwargs(tmp_path):
    samples = [{"x": np.full((2, 2, 1), i, np.int32), "y": np.array([i], np.int64)} for i in range(12)]
    TFRecords(tmp_path).ds2tfrecord(FakeDataset(samples), n_samples_per_shard=4)

    def add(sample, offset):
        return {**sample, "y": sample["y"] + offset}

    inputs, targets = read_all(TFRecords(tmp_path), shuffle_buffer_size=12, preprocessing_fn=add, offset=100)
    assert sorted(int(x["x"][0, 0, 0]) for x in inputs) == list(range(12))
    assert all(int(y["y"][0]) == int(x["x"][0, 0, 0]) + 100 for x, y in zip(inputs, targets, strict=True))


def test_shards_truncated_to_a_multiple_of_workers(tmp_path):
    TFRecords(tmp_path).ds2tfrecord(FakeDataset(make_samples(3, np.random.default_rng(3))), n_samples_per_shard=1)
    assert len(read_all(TFRecords(tmp_path), n_workers=2)[0]) == 2
    with pytest.raises(InputFileError, match="worker"):
        TFRecords(tmp_path).read(1, ["y"], n_workers=4)


def test_records_written_as_otbtf_does_load_and_ours_parse_as_otbtf_does(tmp_path):
    import tensorflow as tf

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    x = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    with open(theirs / "output_types.json", "w") as file:
        json.dump({"x": tf.as_dtype(x.dtype).name}, file, indent=4)
    with open(theirs / "output_shapes.json", "w") as file:
        json.dump(dict({"x": x.shape}.items()), file, indent=4)
    with tf.io.TFRecordWriter(str(theirs / "0.records")) as writer:
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(x).numpy()]))
        writer.write(tf.train.Example(features=tf.train.Features(feature={"x": feature})).SerializeToString())
    inputs, _ = read_all(TFRecords(theirs), target_keys=())
    assert len(inputs) == 1
    np.testing.assert_array_equal(inputs[0]["x"], x)

    ours = tmp_path / "ours"
    TFRecords(ours).ds2tfrecord(FakeDataset([{"x": x}]), n_samples_per_shard=1)
    raw = next(iter(tf.data.TFRecordDataset(str(ours / "0.records"))))
    parsed = tf.io.parse_single_example(raw, {"x": tf.io.FixedLenFeature([], dtype=tf.string)})
    np.testing.assert_array_equal(tf.io.parse_tensor(parsed["x"], out_type="uint16").numpy(), x)


def test_bad_metadata_and_arguments_give_one_line_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputFileError, match="file: cannot create the records directory"):
        TFRecords(tmp_path / "file")
    (tmp_path / "output_types.json").write_text('{"x": "uint12"}')
    with pytest.raises(InputFileError, match=r"output_types.json: unknown dtype \"uint12\"") as error:
        TFRecords(tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / "output_types.json").write_text('{"x": "uint8"}')
    with pytest.raises(InputFileError, match="output_shapes.json: missing"):
        TFRecords(tmp_path).read(1, [])
    (tmp_path / "output_shapes.json").write_text('{"y": [1]}')
    with pytest.raises(InputFileError, match="output_shapes.json: keys"):
        TFRecords(tmp_path)
    (tmp_path / "output_shapes.json").write_text('{"x": [1]')
    with pytest.raises(InputFileError, match="output_shapes.json: cannot read JSON"):
        TFRecords(tmp_path)
    (tmp_path / "output_shapes.json").write_text('{"x": [1]}')
    with pytest.raises(ParameterError, match="target_keys: 'lab' not in the records"):
        TFRecords(tmp_path).read(1, ["lab"])
    with pytest.raises(InputFileError, match="no \\*.records file"):
        TFRecords(tmp_path).read(1, ["x"])


def test_samples_disagreeing_with_the_declared_types_are_refused(tmp_path):
    dataset = FakeDataset([{"x": np.zeros((2,), np.int16)}])
    dataset.output_types = {"x": np.dtype("float32")}
    with pytest.raises(ParameterError, match="'x' is int16"):
        TFRecords(tmp_path).ds2tfrecord(dataset, n_samples_per_shard=1)
    assert not list(tmp_path.glob("*.records")) and not list(tmp_path.glob(".*"))


def test_importing_eotensor_and_the_module_does_not_import_tensorflow():
    code = "import sys, eotensor, eotensor.dataset.tfrecords, eotensor.model; print('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_a_shorter_rewrite_removes_the_earlier_shards_and_bad_counts_are_one_line(tmp_path):
    long = FakeDataset([{"x": np.full((2, 2, 1), k, np.float32)} for k in range(6)])
    TFRecords(str(tmp_path)).ds2tfrecord(long, n_samples_per_shard=2)
    short = FakeDataset([{"x": np.full((3, 3, 1), k, np.float32)} for k in range(2)])
    records = TFRecords(str(tmp_path))
    records.ds2tfrecord(short, n_samples_per_shard=2)
    assert [p.rsplit("/", 1)[1] for p in records.files()] == ["0.records"]
    batches = list(records.read(batch_size=2, target_keys=[], drop_remainder=False))
    assert len(batches) == 1 and batches[0][0]["x"].shape == (2, 3, 3, 1)
    for name, kwargs in (("n_workers", {"n_workers": 0}), ("batch_size", {"batch_size": 0})):
        with pytest.raises(ParameterError, match=f"{name}: expected an integer >= 1"):
            records.read(**{"batch_size": 2, "target_keys": [], **kwargs})
