"""Fail when an executed notebook of the book build holds an error output.

Jupyter Book fails on a cell that raises, but not on an error raised while *displaying* a result
(a figure that matplotlib cannot render, say): that error only lands in the page as a traceback.
This check, run by `make book` after the build, turns it into a failure.
"""

import json
import sys
from pathlib import Path

executed = sorted(Path("_build/jupyter_execute").rglob("*.ipynb"))
if not executed:
    sys.exit("no executed notebooks under _build/jupyter_execute: did the build run?")
bad = []
for path in executed:
    for k, cell in enumerate(json.loads(path.read_text())["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                bad.append(f"{path}: cell {k}: {out.get('ename')}: {out.get('evalue', '').strip()[:200]}")
if bad:
    sys.exit("error outputs in the executed book:\n" + "\n".join(bad))
print(f"checked {len(executed)} executed notebooks: no error outputs")
