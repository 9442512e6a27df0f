"""Device check: the GPU reference pipeline against the built-in executor's outputs, and GPU against CPU time.

    python3 device/check.py          # on a GPU machine: CuPy (or PyTorch for the inventory only), under 5 minutes
    python3 device/check.py --cpu    # anywhere with NumPy: the same pipeline code on NumPy, no timing

Inputs and the built-in outputs were made by Steward (`device/fixtures/`, written by `writeReferenceFixtures`); nothing
is fetched. Prints the GPU inventory (and writes nvidia-smi's XML to $OUT when set), the largest difference against the
built-in outputs, and, with a GPU, the time of standardize + one-hot on a generated 10M x 20 array on GPU and CPU.
With a GPU it also runs the bundled pipeline (pipelines/gpu-reference/run.py) as the external executor does, Parquet
in and out through pyarrow. Exit 0 when the largest difference is within the tolerance, 1 otherwise, 2 when the device
is missing.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_pipeline  # noqa: E402

TOLERANCE = 1e-9
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("STEWARD_DEVICE_FIXTURES", os.path.join(HERE, "fixtures"))


def inventory():
    if not shutil.which("nvidia-smi"):
        return None
    xml = subprocess.run(["nvidia-smi", "-q", "-x"], capture_output=True, text=True, check=True).stdout
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "nvidia-smi.xml"), "w") as f:
            f.write(xml)
    root = ET.fromstring(xml)
    gpus = [
        {
            "model": g.findtext("product_name"),
            "memory": g.findtext("fb_memory_usage/total"),
            "cc_mode": g.findtext("conf_compute/cc_mode") or g.findtext(".//cc_mode"),
        }
        for g in root.findall("gpu")
    ]
    return {"driver": root.findtext("driver_version"), "cuda": root.findtext("cuda_version"), "gpus": gpus}


def compare_one(xp, to_host, input_csv, expected_csv, steps):
    columns = gpu_pipeline.load_csv(os.path.join(FIXTURES, input_csv))
    expected = gpu_pipeline.load_csv(os.path.join(FIXTURES, expected_csv))
    data, order = gpu_pipeline.run(xp, columns, steps)
    if sorted(order) != sorted(expected):
        raise SystemExit(f"{expected_csv}: columns differ: GPU pipeline {order}, built-in {list(expected)}")
    largest, mismatched = 0.0, []
    for name in order:
        got = data[name]
        if isinstance(got, list):
            if got != expected[name]:
                mismatched.append(f"{expected_csv}:{name}")
            continue
        got = numpy.asarray(to_host(got), dtype=numpy.float64)
        want = numpy.asarray([float(v) if v != "" else math.nan for v in expected[name]])
        if got.shape != want.shape or not numpy.array_equal(numpy.isnan(got), numpy.isnan(want)):
            mismatched.append(f"{expected_csv}:{name}")
            continue
        present = ~numpy.isnan(want)
        if present.any():
            largest = max(largest, float(numpy.max(numpy.abs(got[present] - want[present]))))
    return largest, mismatched, len(expected[order[0]])


def compare(xp, to_host):
    """Every reference pipeline against the built-in executor's output: the transforms, then each window aggregate."""
    with open(os.path.join(FIXTURES, "pipeline.json")) as f:
        sets = [("input.csv", "builtin.csv", json.load(f)["steps"])]
    with open(os.path.join(FIXTURES, "window-pipelines.json")) as f:
        for pipeline in json.load(f):
            aggregate = pipeline["name"].rsplit("-", 1)[1]
            sets.append(("window-input.csv", f"window-{aggregate}.csv", pipeline["steps"]))
    largest, mismatched, rows = 0.0, [], {}
    for input_csv, expected_csv, steps in sets:
        one, bad, n = compare_one(xp, to_host, input_csv, expected_csv, steps)
        largest = max(largest, one)
        mismatched += bad
        rows[expected_csv] = n
    return largest, mismatched, rows


def bundled_pipeline():
    """The bundled pipeline as the external executor runs it (pipelines/gpu-reference/run.py, Parquet in and out,
    through pyarrow) on the reference input, against the built-in output."""
    import tempfile

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    root = os.path.dirname(HERE)
    with tempfile.TemporaryDirectory() as work:
        staged, out = os.path.join(work, "input"), os.path.join(work, "output")
        os.mkdir(staged)
        os.mkdir(out)
        pq.write_table(pacsv.read_csv(os.path.join(FIXTURES, "input.csv")), os.path.join(staged, "reference.parquet"))
        with open(os.path.join(FIXTURES, "pipeline.json")) as f:
            steps_file = os.path.join(work, "steps.json")
            with open(steps_file, "w") as g:
                json.dump(json.load(f)["steps"], g)
        command = [
            sys.executable,
            os.path.join(root, "pipelines", "gpu-reference", "run.py"),
            "--steps", steps_file,
            "--module", os.path.join(HERE, "gpu_pipeline.py"),
            "--input", staged,
            "--output", out,
        ]
        t = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        if done.returncode != 0:
            return {"error": f"run.py exited with {done.returncode}: {done.stderr[-2000:]}"}
        table = pq.read_table(os.path.join(out, "reference.parquet"))
        expected = gpu_pipeline.load_csv(os.path.join(FIXTURES, "builtin.csv"))
        largest, mismatched = 0.0, []
        for name in expected:
            if name not in table.column_names:
                mismatched.append(name)
                continue
            got = table.column(name).to_pylist()
            if any(isinstance(v, str) for v in got):
                if ["" if v is None else v for v in got] != expected[name]:
                    mismatched.append(name)
                continue
            got = numpy.asarray([math.nan if v is None else float(v) for v in got])
            want = numpy.asarray([float(v) if v != "" else math.nan for v in expected[name]])
            if not numpy.array_equal(numpy.isnan(got), numpy.isnan(want)):
                mismatched.append(name)
                continue
            present = ~numpy.isnan(want)
            if present.any():
                largest = max(largest, float(numpy.max(numpy.abs(got[present] - want[present]))))
        return {"seconds": seconds, "largest_difference": largest, "mismatched_columns": mismatched}


def timing(cp):
    rows, cols = 10_000_000, 20
    rng = numpy.random.default_rng(1)
    host = rng.normal(50, 10, size=(rows, cols))
    codes = rng.integers(0, 8, size=rows)

    def transform(xp, x, c):
        mean = x.mean(axis=0)
        sd = x.std(axis=0)
        z = (x - mean) / sd
        onehot = (c[:, None] == xp.arange(8)[None, :]).astype(xp.int8)
        return z, onehot

    t = time.perf_counter()
    transform(numpy, host, codes)
    cpu = time.perf_counter() - t
    x, c = cp.asarray(host), cp.asarray(codes)
    transform(cp, x, c)  # warm-up: kernel compilation
    cp.cuda.Stream.null.synchronize()
    t = time.perf_counter()
    transform(cp, x, c)
    cp.cuda.Stream.null.synchronize()
    gpu = time.perf_counter() - t
    return {"rows": rows, "columns": cols, "cpu_s": cpu, "gpu_s": gpu, "speedup": cpu / gpu}


def main():
    cpu_only = "--cpu" in sys.argv
    report = {"tolerance": TOLERANCE}
    if cpu_only:
        report["device"] = "numpy (no GPU requested)"
        largest, mismatched, rows = compare(numpy, lambda a: a)
    else:
        try:
            import cupy as cp
        except ImportError:
            print("GPU pipeline skipped: CuPy is not installed here (run with --cpu to check the same code on NumPy)")
            return 2
        if cp.cuda.runtime.getDeviceCount() == 0:
            print("GPU pipeline skipped: no GPU visible")
            return 2
        report["inventory"] = inventory()
        report["device"] = "cupy"
        largest, mismatched, rows = compare(cp, cp.asnumpy)
        try:
            report["bundled_pipeline"] = bundled_pipeline()
        except Exception as error:  # noqa: BLE001 - reported, and fails the check
            report["bundled_pipeline"] = {"error": repr(error)}
        bundled = report["bundled_pipeline"]
        if "error" in bundled or bundled["mismatched_columns"] or bundled["largest_difference"] > TOLERANCE:
            mismatched.append("bundled_pipeline")
        report["timing"] = timing(cp)
    report.update({"rows": rows, "largest_difference": largest, "mismatched_columns": mismatched})
    print(json.dumps(report, indent=2))
    return 0 if largest <= TOLERANCE and not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
