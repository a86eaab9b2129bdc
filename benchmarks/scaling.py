"""Data-parallel scaling: Trainer and hand-written sharded loop against the device count,
and memory per device against the batch size (see :mod:`opifex.bench.scaling`).

    python benchmarks/scaling.py --devices 1 2 4 --json benchmarks/results/scaling_cpu.json

On a CPU the devices are simulated and share the cores (2 here): expect no real speed-up.
"""

from opifex.bench.scaling import main

if __name__ == "__main__":
    main()
