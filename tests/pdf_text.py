"""A small check of what a PDF made by fpdf2 says: its text, read back from the content streams.

fpdf2 embeds a TrueType font as Identity-H: each shown string is a run of 2-byte glyph ids, and the
font's ToUnicode CMap (bfchar pairs) maps them back to characters. Enough for our invoices; not a
general PDF reader.
"""
from __future__ import annotations

import re
import zlib

_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"(": b"(", b")": b")", b"\\": b"\\"}


def _streams(pdf: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            found.append(zlib.decompress(match.group(1)))
        except zlib.error:
            found.append(match.group(1))
    return found


def _literal(body: bytes) -> bytes:
    """A PDF literal string's bytes (backslash escapes and octal codes undone)."""
    out, i = bytearray(), 0
    while i < len(body):
        byte = body[i:i + 1]
        if byte != b"\\":
            out += byte
            i += 1
            continue
        nxt = body[i + 1:i + 2]
        octal = re.match(rb"[0-7]{1,3}", body[i + 1:i + 4])
        if octal:
            out.append(int(octal.group(0), 8) & 0xFF)
            i += 1 + len(octal.group(0))
        else:
            out += _ESCAPES.get(nxt, nxt)
            i += 2
    return bytes(out)


def pdf_text(pdf: bytes) -> str:
    """Every string the pages show, one per line, in drawing order."""
    streams = _streams(pdf)
    glyphs: dict[int, str] = {}
    for stream in streams:
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.DOTALL):
            for glyph, code in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                glyphs[int(glyph, 16)] = bytes.fromhex(code.decode()).decode("utf-16-be")
    lines = []
    for stream in streams:
        for literal in re.findall(rb"\(((?:\\.|[^\\)])*)\)\s*Tj", stream, re.DOTALL):
            raw = _literal(literal)
            lines.append("".join(glyphs.get(int.from_bytes(raw[i:i + 2], "big"), "\ufffd")
                                 for i in range(0, len(raw) - 1, 2)))
    return "\n".join(lines)
