#!/usr/bin/env python3
"""Pixel statistics of an 8-bit RGB/RGBA non-interlaced PNG, standard library only (zlib).

Prints JSON: width, height, the fraction of pixels that are not near-white, and counts of pixels
close to given colours (#RRGGBB arguments, per-channel tolerance 12). Used by ReportTests to
check a headless-Chromium screenshot is not blank and shows the plots' colours.
"""
import json, struct, sys, zlib

def decode(path):
    d = open(path, "rb").read()
    if d[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("not a PNG")
    pos, idat = 8, b""
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4]); t = d[pos + 4:pos + 8]; c = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if t == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", c)
        elif t == b"IDAT":
            idat += c
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise SystemExit(f"unsupported PNG: depth {depth} colour type {ctype} interlace {interlace}")
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), w * bpp
    prev, rows, i = bytearray(stride), [], 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + ((a + b) >> 1)) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    return w, h, bpp, rows

w, h, bpp, rows = decode(sys.argv[1])
targets = [tuple(int(t.lstrip("#")[k:k + 2], 16) for k in (0, 2, 4)) for t in sys.argv[2:]]
counts, nonwhite = [0] * len(targets), 0
for line in rows:
    for x in range(0, w * bpp, bpp):
        r, g, b = line[x], line[x + 1], line[x + 2]
        if r < 235 or g < 235 or b < 235: nonwhite += 1
        for k, (tr, tg, tb) in enumerate(targets):
            if abs(r - tr) <= 12 and abs(g - tg) <= 12 and abs(b - tb) <= 12: counts[k] += 1
print(json.dumps({"width": w, "height": h, "nonwhite": nonwhite / (w * h), "counts": counts}))
