"""Crafted images for upload tests: real, valid files that decode to far more pixels than their size suggests."""

from __future__ import annotations

import struct


def _lzw_constant(pixels: int) -> bytes:
    """LZW data (minimum code size 2) for `pixels` pixels of palette index 0, as a GIF encoder writes it."""
    clear, end = 4, 5
    out, acc, nbits = bytearray(), 0, 0
    width = 3

    def emit(code):
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    emit(clear)
    next_code, run, left = 6, 1, pixels
    while left > 0:
        # The string of `run` zeros has code 0 (run 1) or run + 4; emitting it adds the run + 1 string.
        take = min(run, left)
        emit(0 if take == 1 else take + 4)
        left -= take
        if next_code == 4096:
            emit(clear)
            width, next_code, run = 3, 6, 1
            continue
        next_code += 1
        if next_code > (1 << width) and width < 12:
            width += 1
        run += 1
    emit(end)
    if nbits:
        out.append(acc & 0xFF)
    blocks = bytearray([2])
    for i in range(0, len(out), 255):
        chunk = out[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes(blocks + b"\0")


def gif_bomb(side: int = 6000, frames: int = 30) -> bytes:
    """A valid animated GIF: `frames` frames of side×side pixels in a few hundred kilobytes."""
    data = bytearray(b"GIF89a" + struct.pack("<HHBBB", side, side, 0xF1, 0, 0))
    data += bytes([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])  # 4-colour global palette
    data += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    frame = _lzw_constant(side * side)
    for _ in range(frames):
        data += b"!\xf9\x04\x08\x0a\x00\x00\x00"  # 100 ms, restore to background
        data += b"," + struct.pack("<HHHHB", 0, 0, side, side, 0) + frame
    return bytes(data + b";")
