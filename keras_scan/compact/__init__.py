"""Compact backbones by block-wise knowledge distillation under a budget.

The implementation lives in `keras_scan.compact.compression`; the public
names are re-exported here.
"""

from keras_scan.compact.compression import (
    ALLOCATION_RULE,
    CANDIDATES,
    SUPPORTED,
    Block,
    compress,
    compress_with_report,
    find_blocks,
)

__all__ = [
    "ALLOCATION_RULE",
    "CANDIDATES",
    "SUPPORTED",
    "Block",
    "find_blocks",
    "compress",
    "compress_with_report",
]
