#!/usr/bin/env python3
"""A tiny calculator REPL: evaluates the arithmetic each client message holds (numbers,
+ - * / // % **, parentheses). Only arithmetic is evaluated, never Python: the input comes
from the network. Unbuffered output matters: a child that block-buffers its stdout (as
Python does on a pipe) delays its messages, hence flush=True."""
import ast
import operator
import sys

OPERATORS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def evaluate(node):
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        left, right = evaluate(node.left), evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ValueError("exponent too large")
        return OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPERATORS:
        return OPERATORS[type(node.op)](evaluate(node.operand))
    raise ValueError("only numbers and + - * / // % ** ( ) are understood")


print("send an expression, e.g. 6*7", flush=True)
for line in sys.stdin:
    line = line.strip()
    try:
        result = evaluate(ast.parse(line, mode="eval"))
    except Exception as e:  # report, keep going
        print(f"error: {e}", file=sys.stderr, flush=True)
        print(f"error: {e}", flush=True)
        continue
    print(result, flush=True)
