#!/usr/bin/env python3
"""Make the ml-metadata and TFDV extension modules load on glibc < 2.38.

A workaround for a packaging gap: ml-metadata 1.21 and TFDV 1.21 only publish manylinux_2_39 wheels, yet their
extension modules need just six symbols older glibc / libstdc++ lack. For each module this marks the GLIBC_2.38,
GLIBCXX_3.4.32 and CXXABI_1.3.15 requirements weak, clears the symbols' versions (patchelf) and adds a shim
library beside it (found through $ORIGIN) that defines them. Idempotent: a patched module is left alone.
"""
from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from pathlib import Path

MODULES = ("ml_metadata/metadata_store/pywrap/metadata_store_extension.so",
           "tensorflow_data_validation/pywrap/tensorflow_data_validation_extension.so")
NEW_VERSIONS = {b"GLIBC_2.38", b"GLIBCXX_3.4.32", b"CXXABI_1.3.15"}
SYMBOLS = ("__isoc23_strtol", "__isoc23_strtoul", "__isoc23_strtoll", "__isoc23_strtoull",
           "_ZSt21ios_base_library_initv", "__cxa_call_terminate")
SHIM_NAME = "libgenre_glibc_shim.so"
SHIM_SOURCE = r"""
#include <stdlib.h>
/* glibc 2.38 made strtol & co. C23-aware under these names; the old ones behave the
   same for the inputs these libraries parse (no 0b prefixes). */
long __isoc23_strtol(const char *s, char **e, int b) { return strtol(s, e, b); }
unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return strtoul(s, e, b); }
long long __isoc23_strtoll(const char *s, char **e, int b) { return strtoll(s, e, b); }
unsigned long long __isoc23_strtoull(const char *s, char **e, int b) { return strtoull(s, e, b); }
/* GCC 13 moved iostream initialisation here; GCC 12's libstdc++ does it statically. */
void _ZSt21ios_base_library_initv(void) {}
/* GCC 13's helper for an exception escaping a noexcept function. */
void *__cxa_begin_catch(void *);
void _ZSt9terminatev(void) __attribute__((noreturn));
void __cxa_call_terminate(void *exc) { if (exc) __cxa_begin_catch(exc); _ZSt9terminatev(); }
"""

SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


def _sections(data: bytearray):
    """Yield (type, offset, size, link, header offset) of each section of a little-endian ELF64 file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise SystemExit("expected a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    for i in range(shnum):
        base = shoff + i * shentsize
        sh_type, = struct.unpack_from("<I", data, base + 4)
        sh_offset, sh_size = struct.unpack_from("<QQ", data, base + 0x18)
        sh_link, = struct.unpack_from("<I", data, base + 0x28)
        yield sh_type, sh_offset, sh_size, sh_link, base


def weaken_version_needs(path: Path) -> list[str]:
    """Set VER_FLG_WEAK on the Vernaux entries that name NEW_VERSIONS; return their names."""
    data = bytearray(path.read_bytes())
    sections = list(_sections(data))
    weakened = []
    for sh_type, offset, _size, link, _ in sections:
        if sh_type != SHT_GNU_VERNEED:
            continue
        strtab_offset = sections[link][1]
        entry = offset
        while True:
            _version, count, _file, aux, nxt = struct.unpack_from("<HHIII", data, entry)
            aux_pos = entry + aux
            for _ in range(count):
                _hash, flags, _other, name, aux_next = struct.unpack_from("<IHHII", data, aux_pos)
                end = data.index(b"\0", strtab_offset + name)
                version_name = bytes(data[strtab_offset + name:end])
                if version_name in NEW_VERSIONS:
                    struct.pack_into("<H", data, aux_pos + 4, flags | VER_FLG_WEAK)
                    weakened.append(version_name.decode())
                if not aux_next:
                    break
                aux_pos += aux_next
            if not nxt:
                break
            entry += nxt
    path.write_bytes(bytes(data))
    return weakened


def patchelf(*args: str) -> str:
    return subprocess.run(["patchelf", *args], check=True, capture_output=True, text=True).stdout.strip()


def build_shim(directory: Path) -> Path:
    shim = directory / SHIM_NAME
    source = directory / "genre_glibc_shim.c"
    source.write_text(SHIM_SOURCE)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-lstdc++"], check=True)
    source.unlink()
    return shim


def patch_module(module: Path) -> str:
    if SHIM_NAME in patchelf("--print-needed", str(module)).split():
        return f"{module.name}: already patched"
    weakened = weaken_version_needs(module)
    for symbol in SYMBOLS:
        patchelf("--clear-symbol-version", symbol, str(module))
    build_shim(module.parent)
    patchelf("--add-needed", SHIM_NAME, str(module))
    rpath = patchelf("--print-rpath", str(module))
    if "$ORIGIN" not in rpath.split(":"):
        patchelf("--set-rpath", ":".join(p for p in ("$ORIGIN", rpath) if p), str(module))
    return f"{module.name}: weakened {sorted(set(weakened))}, shim {SHIM_NAME} added"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", required=True, type=Path)
    args = parser.parse_args()
    site_packages = next((args.venv / "lib").glob("python3*/site-packages"))
    bin_dir = str(args.venv / "bin")
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    for relative in MODULES:
        module = site_packages / relative
        if not module.exists():
            sys.exit(f"{module} is missing: install the pinned requirements first.")
        print("glibc compatibility:", patch_module(module))


if __name__ == "__main__":
    main()
