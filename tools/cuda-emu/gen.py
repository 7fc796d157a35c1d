"""Rewrites kernels/*.cu for the CPU emulation: `k<<<grid, block, smem, stream>>>(args);` becomes
`emu::launch(dim3(grid), dim3(block), [=] { k(args); });`. Usage: gen.py OUT_DIR"""
import re, sys, pathlib
here = pathlib.Path(__file__).resolve().parent
src = here.parent.parent / 'kernels'
out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for f in src.glob('*'):
    s = f.read_text()
    if f.suffix == '.cu':
        def repl(m):
            name, cfg, args = m.group(1), m.group(2), m.group(3)
            # split cfg at top-level commas
            parts, depth, cur = [], 0, ''
            for ch in cfg:
                if ch == '(': depth += 1
                if ch == ')': depth -= 1
                if ch == ',' and depth == 0:
                    parts.append(cur); cur = ''
                else:
                    cur += ch
            parts.append(cur)
            return f'emu::launch(dim3({parts[0]}), dim3({parts[1]}), [=] {{ {name}({args}); }});'
        s = re.sub(r'([\w:]+(?:<[^<>;]*>)?)<<<(.*?)>>>\((.*?)\);', repl, s, flags=re.S)
    (out / f.name).write_text(s)
