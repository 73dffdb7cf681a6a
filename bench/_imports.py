"""Import-time probe, run in a fresh interpreter by bench/run.py (one measurement per process).

    python bench/_imports.py import MODULE[,MODULE...]   time of importing them, in this process
    python bench/_imports.py load_ext EXTENSION          time of %load_ext in an IPython shell
    python bench/_imports.py empty                       nothing (interpreter start, for reference)

Prints one JSON line: wall seconds (perf_counter) and CPU seconds (process_time) of exactly the
import or the ``run_line_magic("load_ext", ...)`` call; for load_ext also the IPython import and
shell creation it needs first (reported separately, not counted), and the magics it registered.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def main() -> None:
    what = sys.argv[1]
    out: dict[str, object] = {}
    if what == "import":
        c0, w0 = time.process_time(), time.perf_counter()
        for name in sys.argv[2].split(","):
            importlib.import_module(name)
        out = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}
    elif what == "load_ext":
        name = sys.argv[2]
        c0, w0 = time.process_time(), time.perf_counter()
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        out["shell_wall"] = time.perf_counter() - w0
        before = {kind: set(m) for kind, m in shell.magics_manager.magics.items()}
        c0, w0 = time.process_time(), time.perf_counter()
        shell.run_line_magic("load_ext", name)
        out.update(wall=time.perf_counter() - w0, cpu=time.process_time() - c0)
        if name not in shell.extension_manager.loaded:
            raise SystemExit(f"%load_ext {name} did not load")
        out["magics"] = sorted(
            f"{'%%' if kind == 'cell' else '%'}{m}"
            for kind, magics in shell.magics_manager.magics.items()
            for m in set(magics) - before[kind]
        )
    elif what != "empty":
        raise SystemExit(f"unknown probe {what!r}")
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
