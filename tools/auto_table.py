#!/usr/bin/env python3
"""The auto rows of a `picardiff bench --json` file as a markdown table: the choice, how it compares
with the fastest row measured, and the cost model's estimates against the measured times.

Usage: python3 tools/auto_table.py bench.json"""
import json,sys
d=json.load(open(sys.argv[1]))
rows=d['rows']
seq={ (r['model'],r['batch'],r['steps']):r for r in rows if r['sampler']=='sequential'}
pic={ (r['model'],r['batch'],r['steps']):r for r in rows if r['sampler'].startswith('picard')}
print("| model | batch | steps | chosen | chosen / best measured | sequential est. / measured ms | picard est. / measured ms (rounds, R̂) | measuring ms |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    if r['sampler']!='auto': continue
    k=(r['model'],r['batch'],r['steps']); e=r['estimate']
    pe=e['iteration_ms']*e['rounds']
    print(f"| {k[0]} | {k[1]} | {k[2]} | {r['chosen']} | {r['ratio_to_best']:.2f} ({r['best']}) | {e['step_ms']*e['steps']:.2f} / {seq[k]['wall_ms']:.2f} | {pe:.1f} / {pic[k]['wall_ms']:.1f} ({pic[k]['rounds']}, {e['rounds']}) | {e['calibration_ms']:.1f} |")
