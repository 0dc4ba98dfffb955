"""A small lint: every Python file compiles and no line is longer than 100 characters."""

import py_compile
import sys
import time
from pathlib import Path

problems = 0
for root in sys.argv[1:]:
    for path in sorted(Path(root).rglob("*.py")):
        py_compile.compile(str(path), doraise=True)
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if len(line) > 100:
                print(f"{path}:{number}: line longer than 100 characters")
                problems += 1
        print(f"checked {path}")
        time.sleep(0.4)
print(f"{problems} problem(s)")
sys.exit(1 if problems else 0)
