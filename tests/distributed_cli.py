"""`keras-scan` with the CPU split into 2 logical devices (TensorFlow backend).

Run by `tests/test_distribute.py` in a subprocess: the logical devices must be
configured before TensorFlow starts, so no pytest process can do it.

    python tests/distributed_cli.py train ... --distribute data-parallel
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

if __name__ == "__main__":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from keras_scan import cli

    sys.exit(cli.main(sys.argv[1:]))
