#!/usr/bin/env python3
"""Tests of tools/plot_log.py: CSV and JSON-lines logs and a metrics file give a PNG of
the expected panels; malformed input exits with status 1 and names the file and line.

Run: python3 tests/tools/test_plot_log.py (exits 77, CTest's skip code, when matplotlib
is missing for this interpreter).
"""

import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))

import plot_log  # noqa: E402

CSV = (
    "step,d_loss,g_loss,d_grad_norm,g_grad_norm,gradient_penalty\n"
    "1,1.386,0.693,0.5,0.25,0.1\n"
    "2,1.2,0.8,0.4,0.3,nan\n"
    "3,1.1,0.9,0.35,0.32,0.05\n"
)
JSONL = (
    '{"step":1,"d_loss":1.386,"g_loss":0.693,"d_grad_norm":0.5,"g_grad_norm":0.25}\n'
    '{"step":2,"d_loss":null,"g_loss":0.8,"d_grad_norm":0.4,"g_grad_norm":0.3}\n'
)
METRICS = "step,frechet,kid\n1,120.5,0.12\n3,80.25,0.08\n"


def png_size(path):
    """Width and height from a PNG's IHDR chunk; fails unless the file is a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


class PlotLogTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="forgery_plot_log_")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_main(self, *args):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = plot_log.main(list(args))
        return status, err.getvalue()

    def test_csv_log_is_read_with_its_parts(self):
        columns, rows = plot_log.read_log(self.write("log.csv", CSV))
        self.assertEqual(columns, ["step", "d_loss", "g_loss", "d_grad_norm", "g_grad_norm", "gradient_penalty"])
        self.assertEqual(rows["step"], [1.0, 2.0, 3.0])
        self.assertTrue(math.isnan(rows["gradient_penalty"][1]))
        self.assertEqual(rows["g_loss"][2], 0.9)

    def test_json_lines_null_is_nan(self):
        columns, rows = plot_log.read_log(self.write("log.jsonl", JSONL))
        self.assertEqual(columns[:3], ["step", "d_loss", "g_loss"])
        self.assertTrue(math.isnan(rows["d_loss"][1]))
        self.assertEqual(rows["g_grad_norm"], [0.25, 0.3])

    def test_png_has_one_panel_per_kind(self):
        log = self.write("log.csv", CSV)
        metrics = self.write("metrics.csv", METRICS)
        sizes = {}
        for name, extra in [("losses", ["--no-grad-norms"]), ("norms", []), ("all", ["--metrics", metrics])]:
            out = os.path.join(self.dir, name + ".png")
            status, err = self.run_main(log, "--out", out, "--smooth", "2", *extra)
            self.assertEqual(status, 0, err)
            sizes[name] = png_size(out)
        # 9 x 3.2 inches per panel at 100 dpi: losses, gradient norms, one per metric.
        self.assertEqual(sizes["losses"], (900, 320))
        self.assertEqual(sizes["norms"], (900, 640))
        self.assertEqual(sizes["all"], (900, 1280))
        self.assertEqual(sorted(os.listdir(self.dir)), ["all.png", "log.csv", "losses.png", "metrics.csv", "norms.png"])

    def test_default_output_is_beside_the_log(self):
        status, err = self.run_main(self.write("run.jsonl", JSONL))
        self.assertEqual(status, 0, err)
        png_size(os.path.join(self.dir, "run.png"))

    def test_smoothing_skips_nan(self):
        self.assertEqual(plot_log.smooth([1.0, 3.0, math.nan, 5.0], 2), [1.0, 2.0, 3.0, 5.0])
        self.assertEqual(plot_log.smooth([1.0, 2.0], 1), [1.0, 2.0])

    def assert_fails(self, args, *parts):
        status, err = self.run_main(*args)
        self.assertEqual(status, 1, err)
        for part in parts:
            self.assertIn(part, err)
        self.assertEqual([f for f in os.listdir(self.dir) if f.endswith(".png") or ".tmp." in f], [])

    def test_malformed_input_names_the_file_and_line(self):
        out = os.path.join(self.dir, "x.png")
        bad_row = self.write("short.csv", CSV + "4,1.0,0.5\n")
        self.assert_fails([bad_row, "--out", out], f"{bad_row}:5:", "expected 6 fields", "found 3")
        word = self.write("word.csv", "step,d_loss\n1,abc\n")
        self.assert_fails([word, "--out", out], f"{word}:2:", "column 'd_loss' is not a number: 'abc'")
        header = self.write("header.csv", "d_loss,g_loss\n1,2\n")
        self.assert_fails([header, "--out", out], f"{header}:1:", "header starting with 'step'")
        empty = self.write("empty.csv", "\n")
        self.assert_fails([empty, "--out", out], empty, "is empty")
        json_bad = self.write("bad.jsonl", JSONL + '{"step":3,"d_loss":\n')
        self.assert_fails([json_bad, "--out", out], f"{json_bad}:3:", "not valid JSON")
        json_nostep = self.write("nostep.jsonl", '{"d_loss":1}\n')
        self.assert_fails([json_nostep, "--out", out], f"{json_nostep}:1:", "no 'step'")
        json_text = self.write("text.jsonl", '{"step":1,"d_loss":"high"}\n')
        self.assert_fails([json_text, "--out", out], "'d_loss' is not a number")
        missing = os.path.join(self.dir, "missing.csv")
        self.assert_fails([missing, "--out", out], missing, "cannot read the log")
        log = self.write("log.csv", CSV)
        bad_metrics = self.write("metrics.csv", "step,frechet\n1\n")
        self.assert_fails([log, "--metrics", bad_metrics, "--out", out], f"{bad_metrics}:2:", "expected 2 fields")
        self.assert_fails([log, "--out", os.path.join(self.dir, "no", "dir", "x.png")], "cannot write the plot")


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"skipped: matplotlib is not installed for {sys.executable}")
        sys.exit(77)
    unittest.main()
