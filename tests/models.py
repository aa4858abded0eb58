"""SavedModels built by the tests (real TensorFlow, nothing downloaded)."""

import os

from eotensor.samples import build_talk_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_scalar_product(path):
    return build_talk_model("scalar_product", path)


def build_scalar_product_ax(path):
    return build_talk_model("scalar_product_ax", path)


def build_add_one(path):
    return build_talk_model("add_one", path)


def build_norm(path):
    return build_talk_model("norm", path)


def build_matrix_round4(path):
    return build_talk_model("matrix_round4", path)


def build_tf1_simple_save(path):
    """A TF1 graph (placeholder x, y = 2x + 1) saved with simple_save: signature keys x:0 and y:0."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, None, None, 4], name="x")
        y = tf.identity(x * 2.0 + 1.0, name="y")
        with tf.compat.v1.Session(graph=graph) as session:
            tf.compat.v1.saved_model.simple_save(session, str(path), inputs={"x:0": x}, outputs={"y:0": y})
    return str(path)


def build_no_signature(path):
    """A SavedModel without any signature."""
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(path))
    return str(path)
