"""OUT/report.html: one self-contained page to look at before trusting a batch.

Every image is embedded as a base64 data URI and the style is inline, so the file can be
mailed or archived alone and still shows everything. It holds the gallery pages, per
protocol the distribution of each label's volume across subjects (report_stats.py), the
subjects flagged as outliers per label, the failures, and the run manifest (run.json).

Usage::

    write_report(out, done, failures, manifest, M, K)   # done: [(subject, marker)] as batch.py has them
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from . import protocols
from .render import GALLERY_FILE
from .report_stats import Z_LIMIT, outliers, protocol_plot, volume_table
from .segio import write_text

REPORT = "report.html"
_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.8em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
img{max-width:100%;display:block;margin:.5em 0}pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.8em}
.ok{color:#2a7}.bad{color:#c33}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def gallery_pages(out_dir: Path) -> List[Path]:
    """gallery.png, gallery_2.png, ... in page order."""
    pages = [p for p in Path(out_dir).iterdir() if GALLERY_FILE.fullmatch(p.name) and p.is_file()]
    return sorted(pages, key=lambda p: int(re.sub(r"\D", "", p.name) or 1))


def report_html(out_dir: Path, done: Sequence[Tuple[str, Dict]], failures: Sequence[Tuple[str, str]],
                manifest: Dict, M: int, K: int) -> str:
    settings = manifest.get("settings", {})
    parts = [f"<h1>Pancakes report: {len(done)} subjects, M={M} protocols, K={K} labels</h1>",
             f"<p>{html.escape(str(out_dir))} · format {html.escape(str(settings.get('format')))} · axis "
             f"{html.escape(str(settings.get('axis')))} · model sha256 "
             f"<code>{html.escape(str(settings.get('model_sha256', ''))[:16])}</code> · "
             f"<span class=\"{'bad' if failures else 'ok'}\">{len(failures)} failed</span></p>"]
    parts.append("<h2>Gallery</h2>")
    pages = gallery_pages(out_dir)
    parts += [_img(p.read_bytes(), p.name) for p in pages] or ["<p>No finished subject.</p>"]
    table = volume_table(done, M, K)
    flagged = outliers(table)
    parts.append("<h2>Label volumes across subjects</h2><p>Per protocol and label: a box plot of the volume "
                 "across subjects, one dot per subject; ringed dots are outliers (below).</p>")
    if done:
        parts += [_img(protocol_plot(table, m, M, K, flagged), protocols.protocol_name(M, K, m)) for m in range(M)]
    parts.append(f"<h2>Outliers</h2><p>Subjects whose volume of a label has a robust z-score (median and MAD "
                 f"across subjects) beyond ±{Z_LIMIT}: {len(flagged)} found.</p>")
    if flagged:
        parts.append(_table(["protocol", "label", "subject", "volume (mm³)", "robust z"],
                            [(o.m + 1, protocols.segment_name(M, K, o.m, o.k), o.subject, f"{o.volume_mm3:.1f}",
                              f"{o.z:+.1f}") for o in flagged]))
    parts.append(f"<h2>Failures</h2><p>{len(failures)} input(s) failed.</p>")
    if failures:
        parts.append(_table(["input", "reason"], failures))
    parts.append("<h2>Run manifest (run.json)</h2><pre>"
                 + html.escape(json.dumps(manifest, indent=2, ensure_ascii=False)) + "</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pancakes report</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_report(out_dir: Path, done: Sequence[Tuple[str, Dict]], failures: Sequence[Tuple[str, str]],
                 manifest: Dict, M: int, K: int) -> Path:
    return write_text(Path(out_dir) / REPORT, report_html(Path(out_dir), done, failures, manifest, M, K))
