#!/usr/bin/env python3
"""Plot a forgery training log as a PNG.

Reads the log that fg::callbacks::LossLog writes, either CSV with the header
``step,d_loss,g_loss,d_grad_norm,g_grad_norm,<objective part names>...`` or JSON
lines (one object per step, null for a non-finite value), and optionally a metrics
CSV with a ``step`` column followed by one column per metric (``step,frechet,kid,...``).
Draws the losses and the objective parts (gradient penalty, R1, ...) in the first
panel, the gradient norms (log scale) in a second, and each metric in a panel of its
own when given, all against the step, and writes a PNG.

Usage:
    python3 tools/plot_log.py run/log.csv --out run/log.png
    python3 tools/plot_log.py run/log.jsonl --metrics run/metrics.csv --smooth 50
    python3 tools/plot_log.py run/log.csv --no-grad-norms --title "WGAN-GP, Fashion-MNIST"

Needs matplotlib (Debian: python3-matplotlib); renders with the Agg backend, so no
display is needed. Exits with status 1 and a message naming the file and line when
the input is malformed.
"""

import argparse
import json
import math
import os
import sys

GRAD_NORMS = ("d_grad_norm", "g_grad_norm")


class LogError(Exception):
    """A malformed input file; the message names the file and the line."""


def _number(text, where, column):
    try:
        return float(text)
    except ValueError:
        raise LogError(f"{where}: column '{column}' is not a number: {text!r}") from None


def read_csv(path, what="log"):
    """Reads a CSV file with a header whose first column is 'step'.

    Returns (columns, rows): the column names and a dict from name to a list of
    floats (NaN for 'nan' or an empty field). Raises LogError when malformed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise LogError(f"{path}: cannot read the {what}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise LogError(f"{path}: the {what} is not text (is it a binary file?)") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise LogError(f"{path}: the {what} is empty: expected a CSV header starting with 'step'")
    header_line, header = numbered[0]
    columns = [c.strip() for c in header.split(",")]
    if columns[0] != "step":
        raise LogError(f"{path}:{header_line}: expected a CSV header starting with 'step', found {header!r}")
    if len(set(columns)) != len(columns):
        raise LogError(f"{path}:{header_line}: repeated column names in the header {header!r}")
    rows = {c: [] for c in columns}
    for number, line in numbered[1:]:
        fields = [x.strip() for x in line.split(",")]
        where = f"{path}:{number}"
        if len(fields) != len(columns):
            raise LogError(f"{where}: expected {len(columns)} fields ({','.join(columns)}), found {len(fields)}")
        for column, field in zip(columns, fields):
            rows[column].append(math.nan if field == "" else _number(field, where, column))
    if not rows["step"]:
        raise LogError(f"{path}: the {what} has a header but no rows")
    return columns, rows


def read_json_lines(path):
    """Reads a JSON-lines log: one object per line with at least 'step'.

    Returns (columns, rows) as read_csv does; a key missing from a line or null
    gives NaN. Raises LogError when malformed.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise LogError(f"{path}: cannot read the log: {e.strerror}") from None
    except UnicodeDecodeError:
        raise LogError(f"{path}: the log is not text (is it a binary file?)") from None
    records = []
    columns = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise LogError(f"{where}: expected a JSON object per line, found {type(record).__name__}")
        if "step" not in record:
            raise LogError(f"{where}: the object has no 'step'")
        for key, value in record.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise LogError(f"{where}: '{key}' is not a number: {value!r}")
            if key not in columns:
                columns.append(key)
        records.append(record)
    if not records:
        raise LogError(f"{path}: the log is empty: expected JSON lines with a 'step' each")
    columns.remove("step")
    columns.insert(0, "step")
    rows = {c: [math.nan if r.get(c) is None else float(r[c]) for r in records] for c in columns}
    return columns, rows


def read_log(path):
    """Reads a LossLog file, CSV or JSON lines, told apart by the first character."""
    try:
        with open(path, "rb") as f:
            start = f.read(4096).lstrip()
    except OSError as e:
        raise LogError(f"{path}: cannot read the log: {e.strerror}") from None
    if start.startswith(b"{"):
        return read_json_lines(path)
    return read_csv(path)


def smooth(values, window):
    """Trailing moving average over `window` points, skipping NaN (NaN where all are)."""
    if window <= 1:
        return list(values)
    out = []
    total, count, queue = 0.0, 0, []
    for v in values:
        queue.append(v)
        if not math.isnan(v):
            total += v
            count += 1
        if len(queue) > window:
            old = queue.pop(0)
            if not math.isnan(old):
                total -= old
                count -= 1
        out.append(total / count if count else math.nan)
    return out


def plot(log, out, metrics=None, window=1, grad_norms=True, title=None):
    """Draws the panels and writes the PNG `out` (atomically: temporary name, then rename).

    `log` and `metrics` are (columns, rows) pairs as read_log and read_csv return them.
    """
    try:
        import matplotlib
    except ImportError:
        raise LogError(
            f"matplotlib is not installed for {sys.executable}: install python3-matplotlib "
            "(Debian) or 'pip install matplotlib', or run the script with /usr/bin/python3"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, rows = log
    losses = [c for c in columns[1:] if c not in GRAD_NORMS]
    norms = [c for c in GRAD_NORMS if c in columns] if grad_norms else []
    panels = [("loss", losses, False, None)]
    if norms:
        panels.append(("gradient norm", norms, True, None))
    if metrics is not None:
        # One panel per metric: their scales differ by orders of magnitude (FID vs KID).
        panels.extend((name, [name], False, metrics[1]) for name in metrics[0][1:])

    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), sharex=True, squeeze=False)
    for ax, (label, names, log_scale, metric_rows) in zip(axes[:, 0], panels):
        is_metric = metric_rows is not None
        source = metric_rows if is_metric else rows
        x = source["step"]
        for name in names:
            # Metrics are few points: markers, no smoothing. Losses are many: smoothed lines.
            if is_metric:
                ax.plot(x, source[name], marker="o", label=name)
            else:
                ax.plot(x, smooth(source[name], window), linewidth=1, label=name)
        if log_scale and all(v > 0 for n in names for v in source[n] if not math.isnan(v)):
            ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if names and not is_metric:
            ax.legend(loc="best", fontsize="small")
    axes[-1, 0].set_xlabel("step")
    caption = title or "training log"
    if window > 1:
        caption += f" (moving average of {window} steps)"
    axes[0, 0].set_title(caption)
    fig.tight_layout()

    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, out)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise LogError(f"{out}: cannot write the plot: {e.strerror}") from None
    finally:
        plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Plot a forgery training log (CSV or JSON lines from fg::callbacks::LossLog) as a PNG."
    )
    parser.add_argument("log", help="the training log (CSV or JSON lines)")
    parser.add_argument("--metrics", help="a metrics CSV with a 'step' column (e.g. step,frechet,kid)")
    parser.add_argument("--out", help="the PNG to write (default: the log's name with .png)")
    parser.add_argument("--smooth", type=int, default=1, metavar="N", help="moving average over N steps (default 1: none)")
    parser.add_argument("--no-grad-norms", action="store_true", help="leave out the gradient-norm panel")
    parser.add_argument("--title", help="the figure title (default: the log's file name)")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error(f"--smooth must be at least 1, got {args.smooth}")
    out = args.out or os.path.splitext(args.log)[0] + ".png"
    try:
        log = read_log(args.log)
        metrics = read_csv(args.metrics, what="metrics file") if args.metrics else None
        plot(log, out, metrics=metrics, window=args.smooth, grad_norms=not args.no_grad_norms,
             title=args.title or os.path.basename(args.log))
    except LogError as e:
        print(f"plot_log: error: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
