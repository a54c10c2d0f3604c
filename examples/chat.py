#!/usr/bin/env python3
"""A tiny REPL: evaluates arithmetic sent by the client. Unbuffered output matters: a child
that block-buffers its stdout (as Python does on a pipe) delays its messages."""
import sys

print("send an expression, e.g. 6*7", flush=True)
for line in sys.stdin:
    line = line.strip()
    try:
        result = eval(line, {"__builtins__": {}}, {})
    except Exception as e:  # report, keep going
        print(f"error: {e}", file=sys.stderr, flush=True)
        print("error (see server log)", flush=True)
        continue
    print(result, flush=True)
