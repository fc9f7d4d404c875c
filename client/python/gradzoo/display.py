"""Progress display for jobs and small tables, without tqdm.

Where it draws (chosen once per display, ``mode="auto"``):
  * ``"notebook"``: inside a Jupyter kernel (IPython importable and a kernel running): one output
    that updates in place through ``IPython.display`` (an HTML <progress> bar, with a text/plain
    fallback for nbconvert and consoles);
  * ``"terminal"``: the stream is a TTY: one line rewritten with ``\\r``;
  * ``"lines"``: anything else (logs, CI, pipes): a plain line on each state change and at most
    every ``line_interval`` seconds.
"""

import html
import shutil
import sys
import time

__all__ = ["ProgressDisplay", "Table", "format_job_line"]


def _in_notebook():
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _fmt_loss(x):
    return f"{x:.3g}" if x else "-"


def _fmt_seconds(s):
    if s <= 0:
        return "-"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s // 60:.0f}m{s % 60:02.0f}s"
    return f"{s // 3600:.0f}h{(s % 3600) // 60:02.0f}m"


def _fraction(job):
    return 1.0 if job.state == "SUCCEEDED" else job.progress.fraction


def format_job_line(job, width=20):
    """One line: target, state, bar, percent, steps, models, eta, losses (train/validation)."""
    p = job.progress
    frac = _fraction(job)
    filled = int(round(frac * width))
    parts = [job.target or job.name, f"{job.state:<9}",
             "[" + "#" * filled + "." * (width - filled) + "]", f"{100 * frac:3.0f}%"]
    if p.total_steps:
        parts.append(f"step {p.step}/{p.total_steps}")
    if p.total:
        parts.append(f"models {p.done}/{p.total}")
    if job.state == "RUNNING" and p.eta_seconds > 0:
        parts.append(f"eta {_fmt_seconds(p.eta_seconds)}")
    if p.mean_train_loss or p.mean_validation_loss:
        parts.append(f"loss {_fmt_loss(p.mean_train_loss)}/{_fmt_loss(p.mean_validation_loss)}")
    if job.state == "FAILED" and job.error:
        parts.append(job.error)
    return " ".join(parts)


class _JobView:
    """What the notebook displays: HTML for Jupyter, text for everything else."""

    def __init__(self, job):
        self.line = format_job_line(job)
        self.frac = _fraction(job)
        self.state = job.state

    def __repr__(self):
        return self.line

    def _repr_html_(self):
        colour = {"SUCCEEDED": "#2a7", "FAILED": "#c33", "CANCELLED": "#888"}.get(self.state, "")
        style = f"color:{colour};" if colour else ""
        return (f'<div style="font-family:monospace;{style}">'
                f'<progress value="{self.frac * 1000:.0f}" max="1000" style="width:14em;'
                f'vertical-align:middle"></progress> {html.escape(self.line)}</div>')


class ProgressDisplay:
    """Shows a job's progress; call ``update(job)`` on each change and ``close(job)`` at the end.

    ``mode``: "auto" (see the module doc), "notebook", "terminal", "lines" or "none".
    """

    def __init__(self, mode="auto", stream=None, min_interval=0.1, line_interval=5.0):
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            if _in_notebook():
                mode = "notebook"
            elif hasattr(self.stream, "isatty") and self.stream.isatty():
                mode = "terminal"
            else:
                mode = "lines"
        if mode not in ("notebook", "terminal", "lines", "none"):
            raise ValueError(f"progress mode {mode!r} is not auto, notebook, terminal, lines "
                             "or none")
        self.mode = mode
        self.min_interval = min_interval
        self.line_interval = line_interval
        self._handle = None
        self._last_draw = 0.0
        self._last_state = None
        self._width = 0
        self._last_line = None
        self._closed = False

    def update(self, job, force=False):
        if self.mode == "none" or self._closed:
            return
        now = time.monotonic()
        changed = job.state != self._last_state
        interval = self.line_interval if self.mode == "lines" else self.min_interval
        if not (force or changed or now - self._last_draw >= interval):
            return
        self._last_draw = now
        self._last_state = job.state
        if self.mode == "notebook":
            from IPython.display import display
            view = _JobView(job)
            if self._handle is None:
                self._handle = display(view, display_id=True)
            else:
                self._handle.update(view)
        elif self.mode == "terminal":
            cols = shutil.get_terminal_size((100, 20)).columns - 1
            line = format_job_line(job)[:cols]
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
        else:
            line = format_job_line(job)
            if line != self._last_line:
                self._last_line = line
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self, job):
        """Draws the final state and ends the line."""
        if self.mode == "none" or self._closed:
            return
        self.update(job, force=True)
        self._closed = True
        if self.mode == "terminal":
            self.stream.write("\n")
            self.stream.flush()


class Table:
    """A small table that prints as aligned text and renders as HTML in Jupyter.

    ``Table(["model", "error"], rows)``; ``rows`` are sequences; floats use ``float_format``.
    """

    def __init__(self, columns, rows, float_format="{:.4g}"):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.float_format = float_format

    def _cell(self, v):
        if isinstance(v, float):
            return self.float_format.format(v)
        return str(v)

    def __str__(self):
        cells = [self.columns] + [[self._cell(v) for v in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._cell(v))}</td>" for v in r)
                       + "</tr>" for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def column(self, name):
        """The values of one column, as a list."""
        i = self.columns.index(name)
        return [r[i] for r in self.rows]
