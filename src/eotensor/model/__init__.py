"""Model building blocks for Keras 3: OTBTF's layers and ops (``eotensor.model.layers``, ``eotensor.model.ops``).

Importing this package does not import Keras; ``eotensor.model.layers`` does.
"""
