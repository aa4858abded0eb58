"""Datasets: OTBTF's ``Buffer``, iterators, ``Dataset`` and ``DatasetFromPatchesImages`` (otbtf.dataset, §9.2).

A :class:`Dataset` mines samples from a patches reader in a background thread into one buffer while the consumer
reads the other (double buffering, as OTBTF), and hands them out one by one or as a ``tf.data.Dataset``.
TensorFlow is imported only by :meth:`Dataset.get_tf_dataset` (through
:func:`eotensor.runtimes.tensorflow.import_tensorflow`), so the readers and the mining work without it.

Fixed from OTBTF (§13.12): the iterator is a seedable sequence of permutations, and the samples are handed out in
its order, so each epoch of ``size`` samples visits every sample exactly once, also with ``max_nb_of_samples``
(the dataset is then the first ``max_nb_of_samples`` samples). An error in the miner thread is raised to the
consumer instead of being lost.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.dataset.readers import PatchesImagesReader, PatchesReaderBase
from eotensor.errors import ParameterError

__all__ = ["Buffer", "Dataset", "DatasetFromPatchesImages", "IteratorBase", "RandomIterator"]


class Buffer:
    """A list of at most ``max_length`` elements (OTBTF's mining buffer)."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.container: list[Any] = []

    def size(self) -> int:
        """The number of elements held."""
        return len(self.container)

    def add(self, new_element: Any) -> None:
        """Append ``new_element``; a full buffer refuses it."""
        if self.size() >= self.max_length:
            raise ValueError(f"the buffer is full ({self.max_length} elements)")
        self.container.append(new_element)

    def is_complete(self) -> bool:
        """Whether the buffer holds ``max_length`` elements."""
        return self.size() == self.max_length


class IteratorBase(ABC):
    """An endless iterator over the sample indices ``0 .. patches_reader.get_size() - 1``."""

    @abstractmethod
    def __init__(self, patches_reader: PatchesReaderBase) -> None:
        self.size = patches_reader.get_size()

    def __iter__(self) -> Iterator[int]:
        return self

    @abstractmethod
    def __next__(self) -> int:
        """The next sample index."""


class RandomIterator(IteratorBase):
    """Epoch after epoch, a new random permutation of the sample indices: each run of ``size`` indices starting
    at a multiple of ``size`` visits every sample once. ``seed`` makes the sequence reproducible."""

    def __init__(self, patches_reader: PatchesReaderBase, seed: int | None = None) -> None:
        super().__init__(patches_reader)
        self.rng = np.random.default_rng(seed)
        self.indices = self.rng.permutation(self.size)
        self.count = 0

    def __next__(self) -> int:
        if self.count == self.size:
            self.indices = self.rng.permutation(self.size)
            self.count = 0
        index = int(self.indices[self.count])
        self.count += 1
        return index


class _FirstSamples(PatchesReaderBase):
    """The first ``size`` samples of a reader (``max_nb_of_samples``), so that the iterator's epoch is the
    dataset's; statistics stay the reader's, as in OTBTF."""

    def __init__(self, reader: PatchesReaderBase, size: int) -> None:
        self.reader, self.size = reader, size

    def get_sample(self, index: int) -> Any:
        if not 0 <= index < self.size:
            raise IndexError(f"sample index {index} is out of range: the dataset has {self.size} samples")
        return self.reader.get_sample(index)

    def get_stats(self) -> dict[str, dict[str, np.ndarray]]:
        return self.reader.get_stats()

    def get_size(self) -> int:
        return self.size


def _iterator_class(iterator_cls: type[IteratorBase] | None, iterator: type[IteratorBase] | None) -> type:
    """OTBTF 4's ``iterator_cls`` or older OTBTF's ``Iterator`` keyword (either, not both)."""
    if iterator_cls is not None and iterator is not None:
        raise ParameterError("iterator_cls: given twice (as iterator_cls and Iterator); give one")
    return iterator_cls or iterator or RandomIterator


class Dataset:
    """Samples of a patches reader, mined in the background and handed out in the iterator's order.

    ``size`` is the reader's, or ``max_nb_of_samples`` when smaller (the first samples). Two buffers of
    ``buffer_length`` samples (at most ``size``): a miner thread fills one while :meth:`read_one_sample` hands out
    the other; :meth:`get_total_wait_in_seconds` tells how long the consumer waited for the miner.
    ``output_types`` (NumPy dtypes; OTBTF's were TF dtypes) and ``output_shapes`` are those of sample 0.
    ``seed`` is passed to the iterator (``iterator_cls(patches_reader=..., seed=seed)``) when given; older OTBTF's
    ``Iterator`` keyword is accepted for ``iterator_cls``.
    """

    def __init__(
        self,
        patches_reader: PatchesReaderBase,
        buffer_length: int = 128,
        iterator_cls: type[IteratorBase] | None = None,
        max_nb_of_samples: int | None = None,
        seed: int | None = None,
        *,
        Iterator: type[IteratorBase] | None = None,  # noqa: N803 (older OTBTF's keyword)
    ) -> None:
        if buffer_length < 1:
            raise ParameterError(f"buffer_length: expected a positive number of samples, got {buffer_length}")
        self.patches_reader = patches_reader
        self.size = patches_reader.get_size()
        if self.size < 1:
            raise ParameterError("patches_reader: the reader has no sample")
        if max_nb_of_samples is not None:
            if max_nb_of_samples < 1:
                raise ParameterError(f"max_nb_of_samples: expected a positive number, got {max_nb_of_samples}")
            self.size = min(self.size, int(max_nb_of_samples))
        view = patches_reader if self.size == patches_reader.get_size() else _FirstSamples(patches_reader, self.size)
        cls = _iterator_class(iterator_cls, Iterator)
        self.iterator = cls(patches_reader=view) if seed is None else cls(patches_reader=view, seed=seed)
        one_sample = patches_reader.get_sample(0)
        self.output_types = {key: np.asarray(value).dtype for key, value in one_sample.items()}
        self.output_shapes = {key: np.shape(value) for key, value in one_sample.items()}
        buffer_length = min(buffer_length, self.size)
        self.miner_buffer = Buffer(buffer_length)
        self.consumer_buffer = Buffer(buffer_length)
        self.consumer_buffer_pos = 0
        self.mining_lock = threading.Lock()
        self.read_lock = threading.Lock()
        self.tot_wait = 0.0
        self._miner_error: BaseException | None = None
        self.miner_thread = self._summon_miner_thread()  # the first read waits for its first fill

    def get_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """The reader's statistics (computed while the miner is held off)."""
        with self.mining_lock:
            return self.patches_reader.get_stats()

    def read_one_sample(self) -> dict[str, Any]:
        """The next sample, in the iterator's order (thread-safe)."""
        with self.read_lock:
            if self.consumer_buffer_pos >= self.consumer_buffer.size():  # exhausted (or a failed fill: retried)
                self._dump()
                self.consumer_buffer_pos = 0
            output = self.consumer_buffer.container[self.consumer_buffer_pos]
            self.consumer_buffer_pos += 1
            return output

    def _dump(self) -> None:
        """Wait for the miner, take its buffer as the consumer's, and start it again."""
        start = time.perf_counter()
        self.miner_thread.join()
        self.tot_wait += time.perf_counter() - start
        if self._miner_error is not None:
            error, self._miner_error = self._miner_error, None
            self.consumer_buffer.container = []
            self.miner_thread = self._summon_miner_thread()  # the next read retries
            raise error
        self.consumer_buffer.container = self.miner_buffer.container
        self.miner_buffer.container = []
        self.miner_thread = self._summon_miner_thread()

    def _collect(self) -> None:
        """Fill the miner buffer (the miner thread's job); an error is kept for the consumer."""
        try:
            while not self.miner_buffer.is_complete():
                index = next(self.iterator)
                with self.mining_lock:
                    self.miner_buffer.add(self.patches_reader.get_sample(index))
        except BaseException as error:  # noqa: B036 (handed to the consumer thread, re-raised there)
            self._miner_error = error

    def _summon_miner_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._collect, name="eotensor-dataset-miner", daemon=True)
        thread.start()
        return thread

    def _generator(self) -> Iterator[dict[str, Any]]:
        """One epoch: ``size`` samples."""
        for _ in range(self.size):
            yield self.read_one_sample()

    @property
    def tf_dataset(self) -> Any:
        """One epoch as an unbatched ``tf.data.Dataset`` of dicts, of known cardinality (OTBTF's attribute; made on
        each access)."""
        from eotensor.runtimes.tensorflow import import_tensorflow

        tf = import_tensorflow()
        signature = {key: tf.TensorSpec(shape, tf.string if self.output_types[key].kind in "SUO" else
                                        tf.dtypes.as_dtype(self.output_types[key]))
                     for key, shape in self.output_shapes.items()}
        tf_ds = tf.data.Dataset.from_generator(self._generator, output_signature=signature).repeat(1)
        # the size is known: batched datasets then have a cardinality, and Keras' fit sizes its epochs
        # without warning that the input "ran out of data"
        return tf_ds.apply(tf.data.experimental.assert_cardinality(self.size))

    def get_tf_dataset(
        self,
        batch_size: int,
        drop_remainder: bool = True,
        preprocessing_fn: Callable | None = None,
        targets_keys: Sequence[str] | None = None,
    ) -> Any:
        """One epoch as a batched ``tf.data.Dataset``; each iteration of it is a new epoch.

        ``preprocessing_fn(example)`` is mapped first. With ``targets_keys`` each example becomes ``(inputs,
        targets)``, two dicts, for Keras' ``fit``. Warns when two batches do not fit in the buffer.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size: expected a positive integer, got {batch_size!r}")
        if 2 * batch_size >= self.miner_buffer.max_length:
            warnings.warn(f"batch size is {batch_size} but the dataset buffer holds {self.miner_buffer.max_length} "
                          "samples; a larger buffer_length avoids waiting for reads", stacklevel=2)
        tf_ds = self.tf_dataset
        if preprocessing_fn is not None:
            tf_ds = tf_ds.map(preprocessing_fn)
        if targets_keys:
            targets = {targets_keys} if isinstance(targets_keys, str) else set(targets_keys)
            keys = list(tf_ds.element_spec) if isinstance(tf_ds.element_spec, Mapping) else []
            missing = sorted(targets - set(keys))
            if missing:
                where = "the preprocessed examples" if preprocessing_fn is not None else "the dataset"
                raise ParameterError(f"targets_keys: {', '.join(map(repr, missing))} not in {where} "
                                     f"(keys: {', '.join(map(repr, keys))})")

            def _split_input_and_target(example: Mapping[str, Any]) -> tuple[dict, dict]:
                return ({k: v for k, v in example.items() if k not in targets},
                        {k: v for k, v in example.items() if k in targets})

            tf_ds = tf_ds.map(_split_input_and_target)
        return tf_ds.batch(int(batch_size), drop_remainder=drop_remainder)

    def to_tfrecords(self, output_dir: str | os.PathLike, n_samples_per_shard: int = 100,
                     drop_remainder: bool = True) -> None:
        """Write the dataset as TFRecords shards in ``output_dir`` (:class:`eotensor.dataset.tfrecords.TFRecords`)."""
        from eotensor.dataset.tfrecords import TFRecords

        TFRecords(output_dir).ds2tfrecord(self, n_samples_per_shard=n_samples_per_shard,
                                          drop_remainder=drop_remainder)

    def get_total_wait_in_seconds(self) -> float:
        """Seconds the consumer spent waiting for the miner (an I/O bottleneck when large)."""
        return self.tot_wait


class DatasetFromPatchesImages(Dataset):
    """A :class:`Dataset` over a :class:`~eotensor.dataset.readers.PatchesImagesReader` of ``filenames_dict``.

    Takes the reader's ``use_streaming``, ``scalar_dict`` and ``patch_height`` and the dataset's ``buffer_length``,
    ``iterator_cls`` (or ``Iterator``), ``max_nb_of_samples`` and ``seed``. ``filename_dict`` (the talk's
    spelling) is accepted for ``filenames_dict``.
    """

    def __init__(
        self,
        filenames_dict: Mapping[str, Sequence[str | os.PathLike]] | None = None,
        use_streaming: bool = False,
        buffer_length: int = 128,
        iterator_cls: type[IteratorBase] | None = None,
        max_nb_of_samples: int | None = None,
        scalar_dict: Mapping[str, Sequence[Any]] | None = None,
        patch_height: int | Mapping[str, int] | None = None,
        seed: int | None = None,
        *,
        filename_dict: Mapping[str, Sequence[str | os.PathLike]] | None = None,
        Iterator: type[IteratorBase] | None = None,  # noqa: N803 (older OTBTF's keyword)
    ) -> None:
        reader = PatchesImagesReader(filenames_dict, use_streaming=use_streaming, scalar_dict=scalar_dict,
                                     patch_height=patch_height, filename_dict=filename_dict)
        super().__init__(reader, buffer_length=buffer_length, iterator_cls=iterator_cls,
                         max_nb_of_samples=max_nb_of_samples, seed=seed, Iterator=Iterator)
