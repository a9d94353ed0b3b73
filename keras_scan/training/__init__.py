"""keras_scan.training, moved into a package (its modules follow).

This step only moves `training.py` to `training/config.py` so its history
follows; the package is that module until it is split.
"""

import sys

from keras_scan.training import config as _module

sys.modules[__name__] = _module
