"""TFRecords in OTBTF's on-disk layout, so that records written by either package load in the other.

A directory holds ``output_types.json`` (``{key: "uint16"}``, dtype names), ``output_shapes.json``
(``{key: [h, w, c]}``), both written with ``json.dump(..., indent=4)`` as OTBTF does, and shards
``0.records``, ``1.records``... of ``tf.train.Example`` whose features are, per key, one bytes value
holding ``tf.io.serialize_tensor(array)``. TensorFlow is imported only when records are written or
read, never when this module is imported.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from eotensor.errors import InputFileError, OutputFileError, ParameterError
from eotensor.io.atomic import AtomicOutput, error_text

TYPES_FILE = "output_types.json"
SHAPES_FILE = "output_shapes.json"

DTYPES = frozenset({
    "bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128", "string",
})
"""The dtype names ``output_types.json`` may hold: those ``tf.io.parse_tensor`` reads back."""


def _dtype_name(dtype: Any) -> str:
    """The TensorFlow name of ``dtype`` given as a TF DType (OTBTF's datasets), NumPy dtype or string."""
    name = getattr(dtype, "name", None)
    if not isinstance(name, str) or name not in DTYPES:
        name = np.dtype(dtype).name
    if name not in DTYPES:
        raise ParameterError(f"dataset: dtype {name} cannot be stored in TFRecords (expected one of "
                             f"{', '.join(sorted(DTYPES))})")
    return name


class TFRecords:
    """A directory of TFRecords shards with their types and shapes, as OTBTF's ``otbtf.tfrecords.TFRecords``.

    ``TFRecords(path)`` creates ``path`` if needed and loads the two JSON files when they exist
    (``output_types`` and ``output_shapes`` are ``None`` otherwise). An unknown dtype or a key in one file
    and not the other is refused with a one-line error naming the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.dirpath = os.fspath(path)
        try:
            os.makedirs(self.dirpath, exist_ok=True)
        except OSError as error:
            raise OutputFileError(
                f"{self.dirpath}: cannot create the records directory ({error_text(error)})") from None
        self.output_types_file = os.path.join(self.dirpath, TYPES_FILE)
        self.output_shapes_file = os.path.join(self.dirpath, SHAPES_FILE)
        self.output_types: dict[str, str] | None = None
        self.output_shapes: dict[str, list[int]] | None = None
        if os.path.exists(self.output_types_file):
            self.output_types = self.load(self.output_types_file)
            for key, name in self.output_types.items():
                if name not in DTYPES:
                    raise InputFileError(f'{self.output_types_file}: unknown dtype "{name}" for key "{key}" '
                                         f"(expected one of {', '.join(sorted(DTYPES))})")
        if os.path.exists(self.output_shapes_file):
            self.output_shapes = self.load(self.output_shapes_file)
        if self.output_types is not None and self.output_shapes is not None \
                and set(self.output_types) != set(self.output_shapes):
            raise InputFileError(f"{self.output_shapes_file}: keys {sorted(self.output_shapes)} differ from "
                                 f"{TYPES_FILE}'s {sorted(self.output_types)}")

    @staticmethod
    def save(data: Mapping[str, Any], filepath: str | os.PathLike) -> None:
        """Write ``data`` as JSON with an indent of 4 (OTBTF's format), atomically."""
        with AtomicOutput(filepath, "path") as output, open(output.temp_path, "w") as file:
            json.dump(data, file, indent=4)

    @staticmethod
    def load(filepath: str | os.PathLike) -> Any:
        """Read a JSON file; a malformed one is refused with a one-line error naming it."""
        try:
            with open(filepath) as file:
                data = json.load(file)
        except (OSError, ValueError) as error:
            raise InputFileError(f"{filepath}: cannot read JSON ({error_text(error)})") from None
        if not isinstance(data, dict):
            raise InputFileError(f"{filepath}: expected a JSON object {{key: value}}")
        return data

    def ds2tfrecord(self, dataset: Any, n_samples_per_shard: int = 100, drop_remainder: bool = True) -> None:
        """Write ``dataset``'s samples into shards of ``n_samples_per_shard`` samples.

        ``dataset`` has OTBTF's Dataset interface: ``get_size()`` (or ``size``), ``output_types``
        (key -> dtype), ``output_shapes`` (key -> shape) and ``read_one_sample()`` (key -> array). There are
        ``size // n_samples_per_shard`` shards, plus one holding the remainder when ``drop_remainder`` is
        False. Each file is written under a temporary name and renamed when complete; shards beyond these,
        left by an earlier write into the same directory, are deleted (``read`` would mix them in).
        """
        if n_samples_per_shard < 1:
            raise ParameterError(f"n_samples_per_shard: expected a positive number, got {n_samples_per_shard}")
        from eotensor.runtimes.tensorflow import import_tensorflow

        tf = import_tensorflow()
        size = int(dataset.get_size() if hasattr(dataset, "get_size") else dataset.size)
        nb_shards, remainder = divmod(size, n_samples_per_shard)
        if remainder and not drop_remainder:
            nb_shards += 1
        types = {key: _dtype_name(dtype) for key, dtype in dataset.output_types.items()}
        shapes = {key: [int(dim) for dim in shape] for key, shape in dataset.output_shapes.items()}
        self.save(shapes, self.output_shapes_file)
        self.save(types, self.output_types_file)
        self.output_types, self.output_shapes = types, shapes
        for stale in self.files():  # numbered shards of an earlier, longer write: read() would take them
            stem = os.path.basename(stale)[:-len(".records")]
            if stem.isdigit() and int(stem) >= nb_shards:
                os.remove(stale)
        for i in range(nb_shards):
            count = min(n_samples_per_shard, size - i * n_samples_per_shard)
            with AtomicOutput(os.path.join(self.dirpath, f"{i}.records"), "path") as output, \
                    tf.io.TFRecordWriter(output.temp_path) as writer:
                for _ in range(count):
                    writer.write(self._example(tf, dataset.read_one_sample()))

    def _example(self, tf: Any, sample: Mapping[str, Any]) -> bytes:
        """One serialized ``tf.train.Example``: per key, a bytes feature holding the serialized tensor."""
        features = {}
        for key, value in sample.items():
            tensor = tf.convert_to_tensor(value)
            if tensor.dtype.name != self.output_types[key] or list(tensor.shape) != self.output_shapes[key]:
                raise ParameterError(f"dataset: sample {key!r} is {tensor.dtype.name} {list(tensor.shape)}, "
                                     f"output_types/output_shapes say {self.output_types[key]} "
                                     f"{self.output_shapes[key]}")
            data = tf.io.serialize_tensor(tensor).numpy()
            features[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
        return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()

    def parse_tfrecord(self, example: Any, target_keys: Sequence[str], preprocessing_fn: Callable | None = None,
                       **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Parse one serialized example into ``(inputs, targets)`` dicts of tensors, split by ``target_keys``.

        Every key is parsed back with its stored dtype and checked against its stored shape;
        ``preprocessing_fn(sample, **kwargs)``, when given, is applied before the split.
        """
        from eotensor.runtimes.tensorflow import import_tensorflow

        tf = import_tensorflow()
        types, shapes = self._metadata()
        features = {key: tf.io.FixedLenFeature([], dtype=tf.string) for key in types}
        parsed = tf.io.parse_single_example(example, features)
        sample = {key: tf.ensure_shape(tf.io.parse_tensor(parsed[key], out_type=types[key]), shapes[key])
                  for key in types}
        if preprocessing_fn is not None:
            sample = preprocessing_fn(sample, **kwargs)
        inputs = {key: value for key, value in sample.items() if key not in target_keys}
        targets = {key: value for key, value in sample.items() if key in target_keys}
        return inputs, targets

    def _metadata(self) -> tuple[dict[str, str], dict[str, list[int]]]:
        """The loaded types and shapes; a missing JSON file is a one-line error naming it."""
        for data, path in ((self.output_types, self.output_types_file), (self.output_shapes, self.output_shapes_file)):
            if data is None:
                raise InputFileError(f"{path}: missing (write the records with ds2tfrecord first)")
        return self.output_types, self.output_shapes

    def files(self) -> list[str]:
        """The ``*.records`` shards of the directory, in shard number order."""
        def number(path: str) -> tuple[int, str]:
            stem = os.path.basename(path)[:-len(".records")]
            return (int(stem), "") if stem.isdigit() else (1 << 62, stem)

        return sorted(glob.glob(os.path.join(glob.escape(self.dirpath), "*.records")), key=number)

    def read(self, batch_size: int, target_keys: Sequence[str], n_workers: int = 1, drop_remainder: bool = True,
             shuffle_buffer_size: int | None = None, preprocessing_fn: Callable | None = None,
             shard_policy: Any = None, prefetch_buffer_size: int | None = None,
             num_parallel_calls: int | None = None, **kwargs: Any) -> Any:
        """A ``tf.data.Dataset`` of ``(inputs, targets)`` batches, as OTBTF's ``TFRecords.read``.

        The shards are truncated to a multiple of ``n_workers`` (none left is an error); the pipeline is
        map(parse) -> shuffle(``shuffle_buffer_size``, when given; the order is then non-deterministic) ->
        batch -> prefetch. ``shard_policy`` defaults to ``AutoShardPolicy.AUTO``, ``prefetch_buffer_size``
        and ``num_parallel_calls`` to ``AUTOTUNE``; ``kwargs`` go to ``preprocessing_fn``.
        """
        from eotensor.runtimes.tensorflow import import_tensorflow

        for name, value in (("batch_size", batch_size), ("n_workers", n_workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(f"{name}: expected an integer >= 1, got {value!r}")
        tf = import_tensorflow()
        types, _ = self._metadata()
        if isinstance(target_keys, str):
            target_keys = [target_keys]
        missing = [key for key in target_keys if key not in types]
        if missing and preprocessing_fn is None:
            raise ParameterError(f"target_keys: {', '.join(map(repr, missing))} not in the records "
                                 f"(keys: {', '.join(types)})")
        files = self.files()
        files = files[:n_workers * (len(files) // n_workers)]
        if not files:
            raise InputFileError(f"{self.dirpath}: no *.records file for at least one of the {n_workers} "
                                 "worker(s); write at least one shard per worker")
        autotune = tf.data.AUTOTUNE
        options = tf.data.Options()
        if shuffle_buffer_size:
            options.deterministic = False
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.AUTO if shard_policy is None else shard_policy)
        parse = partial(self.parse_tfrecord, target_keys=list(target_keys), preprocessing_fn=preprocessing_fn,
                        **kwargs)
        dataset = tf.data.TFRecordDataset(files).with_options(options)
        dataset = dataset.map(parse, num_parallel_calls=autotune if num_parallel_calls is None else num_parallel_calls)
        if shuffle_buffer_size:
            dataset = dataset.shuffle(buffer_size=shuffle_buffer_size)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.prefetch(autotune if prefetch_buffer_size is None else prefetch_buffer_size)
