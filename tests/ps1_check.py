"""A syntax check for installer/install.ps1 where no PowerShell can be installed (none comes from
Debian's or PyPI's registries; CI runs on Linux).

It reads the script the way PowerShell's tokenizer does for what can break a whole script: comments
(`#`, `<# #>`), strings ('...' with '' escapes, "..." with backtick escapes and $( ) subexpressions),
here-strings (@'...'@, @"..."@ closed at the start of a line) and the nesting of (), {} and [].
It reports the line of the first problem, and `tests/test_installer.py` shows that it finds broken
copies of the script. Where `pwsh` exists, the test also runs PowerShell's own parser.
"""
from __future__ import annotations

PAIRS = {")": "(", "}": "{", "]": "["}


def check(text: str) -> list[str]:
    """Problems found, as 'line N: ...' (empty: the script tokenizes and its brackets nest)."""
    stack: list[tuple[str, int]] = []
    i, n, line = 0, len(text), 1
    problems: list[str] = []

    def at_line_start(k: int) -> bool:
        return k == 0 or text[k - 1] == "\n"

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("<#", i):
            j = text.find("#>", i + 2)
            if j < 0:
                return [f"line {line}: block comment <# never closed"]
            line += text.count("\n", i, j)
            i = j + 2
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("@'", i) or text.startswith('@"', i):
            q = text[i + 1]
            start = line
            j = i + 2
            while True:
                j = text.find("\n" + q + "@", j)
                if j < 0:
                    return [f"line {start}: here-string @{q} never closed ({q}@ must start a line)"]
                break
            line += text.count("\n", i, j + 1)
            i = j + 3
        elif c == "'":
            start = line
            j = i + 1
            while True:
                k = text.find("'", j)
                if k < 0:
                    return [f"line {start}: string ' never closed"]
                if text.startswith("''", k):
                    j = k + 2
                    continue
                break
            line += text.count("\n", i, k)
            i = k + 1
        elif c == '"':
            start = line
            j = i + 1
            depth = 0
            while True:
                if j >= n:
                    return [f'line {start}: string " never closed']
                d = text[j]
                if d == "`":
                    j += 2
                    continue
                if text.startswith("$(", j):
                    depth += 1
                    j += 2
                    continue
                if d == ")" and depth:
                    depth -= 1
                elif d == '"' and not depth:
                    if text.startswith('""', j):
                        j += 2
                        continue
                    break
                j += 1
            line += text.count("\n", i, j)
            i = j + 1
        elif c == "`":
            i += 2  # escape / line continuation
        elif c in "({[":
            stack.append((c, line))
            i += 1
        elif c in ")}]":
            if not stack or stack[-1][0] != PAIRS[c]:
                opened = f" (open {stack[-1][0]} from line {stack[-1][1]})" if stack else ""
                problems.append(f"line {line}: unexpected {c}{opened}")
                return problems
            stack.pop()
            i += 1
        else:
            i += 1
    if stack:
        problems.append(f"line {stack[-1][1]}: {stack[-1][0]} never closed")
    return problems
