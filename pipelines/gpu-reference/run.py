"""Steward's bundled GPU reference pipeline, as the external executor runs it.

Reads each staged Parquet file of --input, applies the steps of --steps with device/gpu_pipeline.py on CuPy, and
writes a Parquet file of the same name to --output. Needs CuPy and pyarrow (a GPU node has both); without CuPy it
stops with a clear line and exit status 2, never falling back to the CPU.
"""

import argparse
import importlib.util
import json
import math
import os
import sys


def load_module(path):
    spec = importlib.util.spec_from_file_location("gpu_pipeline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", required=True)
    parser.add_argument("--module", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    try:
        import cupy as xp
    except ImportError:
        print("GPU pipeline skipped: CuPy is not installed on this worker", file=sys.stderr)
        sys.exit(2)
    import numpy
    import pyarrow as pa
    import pyarrow.parquet as pq

    pipeline = load_module(args.module)
    with open(args.steps) as f:
        steps = json.load(f)
    for name in sorted(os.listdir(args.input)):
        if not name.endswith(".parquet"):
            continue
        table = pq.read_table(os.path.join(args.input, name))
        columns = {
            c: ["" if v is None else str(v) for v in table.column(c).to_pylist()] for c in table.column_names
        }
        data, order = pipeline.run(xp, columns, steps)
        arrays = {}
        for c in order:
            value = data[c]
            if isinstance(value, list):
                arrays[c] = pa.array([None if v == "" else v for v in value], type=pa.string())
            else:
                host = xp.asnumpy(value)
                if host.dtype.kind == "f":
                    arrays[c] = pa.array([None if math.isnan(v) else float(v) for v in host.tolist()], type=pa.float64())
                else:
                    arrays[c] = pa.array(host.astype(numpy.int32))
        pq.write_table(pa.table(arrays), os.path.join(args.output, name), compression="zstd")
        print(f"{name}: {table.num_rows} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
