"""Steward's GPU reference pipeline: the built-in transforms (standardize, min-max, impute, one-hot, ordinal) on CuPy.

The same code runs on NumPy (`xp=numpy`), which is how it is checked where there is no GPU. Numeric columns are
float64 arrays with NaN for a missing value; categorical columns stay on the host as Python lists and are compared on
the device as integer codes. Fixed-window aggregation is not implemented here (the built-in executor does it).
"""

import csv


def load_csv(path):
    """Columns of a CSV file as lists of strings ('' for a missing value)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: [row[i] for row in body] for i, name in enumerate(header)}


def numeric(xp, values):
    return xp.asarray([float(v) if v != "" else float("nan") for v in values], dtype=xp.float64)


def standardize(xp, x):
    present = ~xp.isnan(x)
    mean = xp.nanmean(x)
    sd = xp.sqrt(xp.nanmean((x - mean) ** 2))
    scaled = xp.where(sd > 0, (x - mean) / xp.where(sd > 0, sd, 1.0), 0.0)
    return xp.where(present, scaled, xp.nan)


def min_max(xp, x):
    present = ~xp.isnan(x)
    lo, hi = xp.nanmin(x), xp.nanmax(x)
    span = hi - lo
    scaled = xp.where(span > 0, (x - lo) / xp.where(span > 0, span, 1.0), 0.0)
    return xp.where(present, scaled, xp.nan)


def impute(xp, x, method, value=None):
    if method == "mean":
        fill = xp.nanmean(x)
    elif method == "median":
        fill = xp.nanmedian(x)
    else:
        fill = value
    return xp.where(xp.isnan(x), fill, x)


def one_hot(xp, values, categories=None):
    cats = categories or sorted({v for v in values if v != ""})
    index = {c: i for i, c in enumerate(cats)}
    codes = xp.asarray([index.get(v, -1) for v in values], dtype=xp.int32)
    return {c: (codes == i).astype(xp.int8) for i, c in enumerate(cats)}


def ordinal(xp, values, order=None):
    order = order or sorted({v for v in values if v != ""})
    index = {c: i for i, c in enumerate(order)}
    unknown = {v for v in values if v != "" and v not in index}
    if unknown:
        raise ValueError("holds a value that the order does not list")
    return xp.asarray([float(index[v]) if v != "" else float("nan") for v in values], dtype=xp.float64)


def run(xp, columns, steps):
    """Applies the pipeline's steps to the columns; returns numeric columns on the device and the column order."""
    data = dict(columns)
    order = list(columns)
    for step in steps:
        op = step["op"]
        if op in ("standardize", "min-max", "impute"):
            for c in step["columns"]:
                x = data[c] if not isinstance(data[c], list) else numeric(xp, data[c])
                if op == "standardize":
                    data[c] = standardize(xp, x)
                elif op == "min-max":
                    data[c] = min_max(xp, x)
                else:
                    data[c] = impute(xp, x, step["method"], step.get("value"))
        elif op == "one-hot":
            flags = one_hot(xp, data.pop(step["column"]), step.get("categories"))
            order.remove(step["column"])
            for cat, flag in flags.items():
                name = f"{step['column']}={cat}"
                data[name] = flag
                order.append(name)
        elif op == "ordinal":
            data[step["column"]] = ordinal(xp, data[step["column"]], step.get("order"))
        else:
            raise ValueError(f"the GPU pipeline has no step {op}")
    return data, order
