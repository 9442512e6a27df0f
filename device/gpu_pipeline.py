"""Steward's GPU reference pipeline: the built-in transforms (standardize, min-max, impute, one-hot, ordinal and
fixed-window aggregation of per-subject time series) on CuPy.

The same code runs on NumPy (`xp=numpy`), which is how it is checked where there is no GPU. Numeric columns are
float64 arrays with NaN for a missing value; categorical columns stay on the host as Python lists and are compared on
the device as integer codes; dates are day numbers on the device.
"""

import csv
import datetime


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


def window(xp, data, step):
    """Per-subject windows of `days` counted from each subject's first observation, as the built-in executor makes
    them: one row per subject and window (subject order, then window), its start, row count and aggregated values."""
    subjects, times = data[step["subject"]], data[step["time"]]
    keep = [i for i in range(len(subjects)) if subjects[i] != "" and times[i] != ""]
    names = sorted({subjects[i] for i in keep})
    code = {name: k for k, name in enumerate(names)}
    subj = xp.asarray([code[subjects[i]] for i in keep], dtype=xp.int64)
    day = xp.asarray([datetime.date.fromisoformat(times[i][:10]).toordinal() for i in keep], dtype=xp.int64)
    order = xp.lexsort(xp.stack([day, subj]))
    subj, day = subj[order], day[order]
    first_of = xp.concatenate([xp.asarray([True]), subj[1:] != subj[:-1]])
    segment = xp.cumsum(first_of) - 1
    first_day = day[first_of][segment]
    index = (day - first_day) // step["days"]
    starts = xp.concatenate([xp.asarray([True]), (subj[1:] != subj[:-1]) | (index[1:] != index[:-1])])
    group = xp.cumsum(starts) - 1
    groups = int(group[-1]) + 1 if len(keep) else 0
    out_subject = [names[int(k)] for k in subj[starts].tolist()]
    out_index = index[starts].astype(xp.int32)
    start_days = (first_day + index * step["days"])[starts]
    out = {
        step["subject"]: out_subject,
        "window_index": out_index,
        "window_start": [datetime.date.fromordinal(int(d)).isoformat() for d in start_days.tolist()],
        "rows_in_window": xp.bincount(group, minlength=groups).astype(xp.int32),
    }
    for name in step["values"]:
        raw = data[name] if not isinstance(data[name], list) else numeric(xp, data[name])
        x = raw[xp.asarray(keep, dtype=xp.int64)][order] if len(keep) else raw[:0]
        present = ~xp.isnan(x)
        n = xp.bincount(group, weights=present.astype(xp.float64), minlength=groups)
        total = xp.bincount(group, weights=xp.where(present, x, 0.0), minlength=groups)
        aggregate = step["aggregate"]
        if aggregate == "mean":
            value = xp.where(n > 0, total / xp.where(n > 0, n, 1.0), xp.nan)
        elif aggregate == "sum":
            value = xp.where(n > 0, total, xp.nan)
        else:
            # Within each group, sort the present values; the first is the min, the last the max.
            fill = xp.inf if aggregate == "min" else -xp.inf
            by = xp.lexsort(xp.stack([xp.where(present, x, fill), group]))
            pick = starts if aggregate == "min" else xp.concatenate([starts[1:], xp.asarray([True])])
            value = xp.where(n > 0, x[by][pick], xp.nan)
        out[name] = value
    return out, [step["subject"], "window_index", "window_start", "rows_in_window", *step["values"]]


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
        elif op == "window":
            data, order = window(xp, data, step)
        else:
            raise ValueError(f"the GPU pipeline has no step {op}")
    return data, order
