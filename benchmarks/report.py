"""Prints a benchmark's table and saves it, with the machine it was measured on, in ``benchmarks/results/``.

The book's performance appendix (book/appendix_performance.md) reads the saved files: its numbers are never typed.
A run on a GPU is saved next to the CPU run (``<name>-cuda.json``), so that both stay on record.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict:
    """What the numbers were measured on: date, CPU, cores and threads, torch, the load average when the run ended
    (timings of a loaded machine are slower), and the GPU where one was used."""
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "load": round(os.getloadavg()[0], 1),  # other work on the machine slows the timings: on record with them
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def save_table(name: str, device: torch.device, title: str, header: tuple, rows: list, notes: tuple = ()) -> Path:
    """Prints ``title``, the table and ``notes``; writes them with :func:`machine` and the command line to
    ``results/<name>[-cuda].json``; returns that path."""
    table = [tuple(str(c) for c in header), *(tuple(str(c) for c in r) for r in rows)]
    if any(len(r) != len(header) for r in table):
        raise ValueError(f"every row must have {len(header)} cells, like the header {header}")
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    print(title)
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    for note in notes:
        print(note)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}{'-cuda' if torch.device(device).type == 'cuda' else ''}.json"
    record = {
        "benchmark": name,
        "command": "python benchmarks/" + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine(torch.device(device)),
        "title": title,
        "header": list(table[0]),
        "rows": [list(r) for r in table[1:]],
        "notes": list(notes),
    }
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    print(f"saved to {path}")
    return path


def load_all() -> list[dict]:
    """Every saved result, in the order of the benchmarks' names (CPU before GPU)."""
    paths = sorted(RESULTS.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no saved results in {RESULTS}: run `make bench`")
    return [json.loads(p.read_text()) for p in paths]


def markdown(record: dict) -> str:
    """A saved result as Markdown: what ran, on which machine, its table and notes."""
    m = record["machine"]
    where = f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads, load average {m['load']})"
    if "gpu" in m:
        where += f", GPU {m['gpu']}"
    lines = [
        f"**{record['title'][:1].upper() + record['title'][1:]}.** `{record['command']}` on {m['date']}: {where}; torch {m['torch']}, "
        f"Python {m['python']}, device `{m['device']}`.",
        "",
        "| " + " | ".join(record["header"]) + " |",
        "|" + "---|" * len(record["header"]),
        *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in record["rows"]),
    ]
    if record["notes"]:
        lines += ["", *(f"- {note}" for note in record["notes"])]
    return "\n".join(lines)
