"""What the command line shows: one line per output, tables of figures, batch progress and
summaries. Figures come from the metrics registry, so a new figure shows up here by itself."""

from __future__ import annotations

import math
import re
import sys
import time

__all__ = ["describe_outcome", "figures_table", "BatchProgress", "batch_summary", "status_report",
           "kib", "error", "warn"]


# Control characters (C0, DEL, C1) in a file name would reach the terminal as escape
# sequences: shown escaped instead, as \x1b.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters escaped (a name's undecodable bytes
    are escaped by the streams themselves: see ``cli.main``)."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def error(message: str) -> None:
    print(f"colorquant: {printable(message)}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"colorquant: warning: {printable(message)}", file=sys.stderr)


def kib(n_bytes: int) -> str:
    return f"{n_bytes / 1024:.1f} KiB"


def figure_text(name: str, value, *, bare: bool = False) -> str:
    """A figure as people read it: "33.10 dB", "0.9412", "inf (lossless)", "n/a"."""
    from ..metrics import METRICS

    metric = METRICS[name]
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf" if bare else "inf (lossless)"
    # four decimals for figures on a 0-1 scale (SSIM), two for the rest
    unit_scale = metric.target_bounds is not None and metric.target_bounds[1] <= 1
    digits = 4 if unit_scale or (metric.unit == "" and metric.target_bounds is None and abs(value) <= 1) else 2
    unit = f" {metric.unit}" if metric.unit and not bare else ""
    return f"{value:.{digits}f}{unit}"


def _shown(metrics: dict) -> list[str]:
    """The figures worth a line: those computed, but not MSE (PSNR says the same)."""
    return [name for name, value in metrics.items() if value is not None and name != "mse"]


def describe_outcome(outcome) -> str:
    from ..metrics import METRICS

    if outcome.bytes_in:
        change = 100.0 * (outcome.bytes_out - outcome.bytes_in) / outcome.bytes_in
        saved = f", {kib(outcome.bytes_in)} -> {kib(outcome.bytes_out)} ({change:+.0f}%)"
    else:
        saved = f", {kib(outcome.bytes_out)}"
    figures = "".join(f", {METRICS[name].title} {figure_text(name, outcome.metrics[name])}"
                      for name in _shown(outcome.metrics))
    dithered = f" dithered at {outcome.dither:g}" if outcome.dither else ""
    budget = f" (budget {kib(outcome.max_bytes)})" if outcome.max_bytes is not None else ""
    return printable(f"{outcome.input} -> {outcome.output}: {outcome.colors} colours{dithered}"
                     f"{figures}{saved}{budget}, {outcome.seconds:.2f} s")


def figures_table(rows, *, bytes_in: int | None) -> str:
    """One row per method: ``rows`` are ``(title, Metrics, seconds)``."""
    from ..metrics import METRICS

    names = [name for name in METRICS
             if name != "mse" and any(figures.values.get(name) is not None for _, figures, _ in rows)]
    columns = [("method", 11, "<"), ("colours", 7, ">")]
    columns += [(METRICS[n].title + (f" {METRICS[n].unit}" if METRICS[n].unit else ""),
                 max(8, len(METRICS[n].title) + 3), ">") for n in names]
    columns += [("size", 10, ">"), ("vs input", 9, ">"), ("seconds", 8, ">")]
    header = " ".join(f"{title:{align}{width}}" for title, width, align in columns)
    lines = [header, "-" * len(header)]
    for title, figures, seconds in rows:
        ratio = f"{100.0 * figures.bytes / bytes_in:.1f}%" if bytes_in else "n/a"
        cells = [title, str(figures.n_colors)]
        cells += [figure_text(name, figures.values.get(name), bare=True) for name in names]
        cells += [kib(figures.bytes), ratio, f"{seconds:.3f}"]
        lines.append(" ".join(f"{cell:{align}{width}}" for cell, (_, width, align) in zip(cells, columns)))
    return "\n".join(lines)


class BatchProgress:
    """A live bar on a terminal (tqdm), plain lines otherwise; failures always on stderr."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.done, self.total = quiet, None, 0, 0
        self.saved, self.started = 0, None

    def __call__(self, kind, payload):
        if kind == "planned":
            self.total, self.started = payload["todo"], time.perf_counter()
            if not self.quiet:
                print(f"{payload['total']} images: {payload['up_to_date']} up to date, "
                      f"{payload['todo']} to do", file=sys.stderr)
            if not self.quiet and sys.stderr.isatty() and self.total:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="img", file=sys.stderr, dynamic_ncols=True)
            return
        outcome = payload
        self.done += 1
        kept = (f"; earlier output {outcome.output} kept"
                if outcome.status != "done" and outcome.output else "")
        if outcome.status == "done":
            self.saved += (outcome.bytes_in or 0) - (outcome.bytes_out or 0)
        if outcome.status == "failed":
            error(outcome.error_text("cli") + kept)
        if self.bar is not None:
            self.bar.set_postfix_str(f"saved {self.saved / 2**20:.1f} MiB", refresh=False)
            self.bar.update(1)
        elif not self.quiet:
            elapsed = time.perf_counter() - self.started
            rate = self.done / elapsed if elapsed > 0 else 0.0
            eta = (self.total - self.done) / rate if rate else 0.0
            detail = (f"{kib(outcome.bytes_in or 0)} -> {kib(outcome.bytes_out or 0)}"
                      if outcome.status == "done" else (outcome.error_text("cli") or "") + kept)
            print(f"[{self.done}/{self.total}] {printable(outcome.input)}: {outcome.status}, {detail} "
                  f"({rate:.1f} img/s, ETA {eta:.0f} s)", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _saved(bytes_in: int, bytes_out: int) -> str:
    saved = bytes_in - bytes_out
    share = f" ({100.0 * saved / bytes_in:.1f}%)" if bytes_in else ""
    return f"{kib(bytes_in)} -> {kib(bytes_out)}, saved {kib(saved)}{share}"


def batch_summary(summary) -> str:
    """The end of a run. "failed" counts every input that stands failed, as ``--status`` does:
    this run's failures and earlier ones that were not retried."""
    counts = summary.counts
    psnr = f"{summary.mean_psnr:.2f} dB" if summary.mean_psnr is not None else "n/a"
    failed = f"{summary.failed}"
    if summary.failed_before:
        failed += f" ({counts['failed']} now, {summary.failed_before} from earlier runs; --retry-failed tries them)"
    lines = [
        f"{'images found':<22}{summary.total}",
        # an input that stands failed from an earlier run is not "up to date": it is counted
        # under failed, with the earlier runs' share said
        f"{'already up to date':<22}{summary.up_to_date - summary.failed_before}",
        f"{'done now':<22}{counts['done']}",
        f"{'skipped':<22}{counts['skipped']}",
        f"{'failed':<22}{failed}",
    ]
    if summary.kept:
        lines.append(f"{'earlier outputs kept':<22}{summary.kept} (of inputs that failed or were skipped now)")
    for count, label in ((summary.deleted, "inputs gone"), (summary.hidden, "hidden, not read"),
                         (summary.not_images, "not images, not read"),
                         (summary.temporaries_removed, "temporaries removed")):
        if count:
            lines.append(f"{label:<22}{count}")
    lines += [f"{'bytes in -> out':<22}{_saved(summary.bytes_in, summary.bytes_out)}",
              f"{'mean PSNR (done now)':<22}{psnr}"]
    return "\n".join(lines)


def status_report(summary: dict) -> str:
    """``batch --status``: counts per status, and the output files the manifest accounts for
    (done outputs, earlier outputs kept, outputs of inputs that are gone)."""
    counts = summary["counts"]
    psnr = f"{summary['mean_psnr']:.2f} dB" if summary["mean_psnr"] is not None else "n/a"
    lines = [f"{status:<10}{count}" for status, count in counts.items()]
    lines.append(f"{'outputs':<10}{summary['outputs']} files"
                 + (f" ({summary['kept']} kept from earlier runs)" if summary["kept"] else ""))
    if summary["gone"]:
        lines.append(f"{'gone':<10}{summary['gone']} inputs no longer there (their outputs kept)")
    lines.append(f"bytes {_saved(summary['bytes_in'], summary['bytes_out'])}; mean PSNR {psnr}")
    lines += [f"failed: {reason if reason.startswith(relpath + ': ') else f'{relpath}: {reason}'}"
              for relpath, reason in summary["failures"]]
    return "\n".join(lines)
