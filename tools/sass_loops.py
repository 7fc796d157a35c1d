"""Static SASS loop sizes (scripts/sass-loops.sh): for each kernel in a `cuobjdump -sass` listing whose
name matches the pattern, the instructions of its largest loop (from the target of a backward branch
to that branch), by class. Usage: sass_loops.py LISTING [NAME_REGEX]"""
import collections
import re
import sys

MEM = {"LDG", "STG", "LDC", "LDS", "STS"}
FP = {"FFMA", "FMUL", "FADD", "FSEL", "FSETP", "MUFU", "HFMA2"}
CTRL = {"BRA", "BSSY", "BSYNC", "CALL", "EXIT", "RET"}


def kind(text):
    op = re.sub(r"^@!?U?P\w+\s+", "", text).split()[0]
    base = op.split(".")[0]
    if base in MEM:
        return "mem"
    if base == "SHFL":
        return "shfl"
    if base in FP:
        return "fp"
    if base in CTRL:
        return "ctrl"
    if base in ("MOV", "CS2R") or op.startswith("IMAD.MOV"):
        return "move"
    return "int"


def main():
    funcs, fn = collections.OrderedDict(), None
    for line in open(sys.argv[1]):
        m = re.search(r"Function : (\S+)", line)
        if m:
            fn = m.group(1)
            funcs[fn] = []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m and fn:
            funcs[fn].append((int(m.group(1), 16), m.group(2)))
    pattern = re.compile(sys.argv[2] if len(sys.argv) > 2 else ".")
    for fn, code in funcs.items():
        if not pattern.search(fn):
            continue
        best = []
        for addr, text in code:
            m = re.search(r"\bBRA\b.*?0x([0-9a-f]+)", text)
            if m and int(m.group(1), 16) < addr:
                span = [t for a, t in code if int(m.group(1), 16) <= a <= addr]
                best = max(best, span, key=len)
        if not best:
            continue
        counts = collections.Counter(kind(t) for t in best)
        name = re.sub(r".*_picard_cu_[0-9a-f]+_?\d+", "", fn)
        print(f"{name[:60]:60s} loop {len(best):4d}  " + " ".join(f"{k} {v}" for k, v in sorted(counts.items())))


main()
