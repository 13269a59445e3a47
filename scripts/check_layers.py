#!/usr/bin/env python3
"""The host's layering, checked: each folder of host/ includes only its own headers and
those of the folders below it (README.md, "Layout"):

    cli
    train (training and the studies), analysis, interop, launch
    model
    experiment, data, runtime, conformance
    util (and the SDK, which every folder may use)

A project include ("folder/file.hpp") that reaches up or sideways is reported with its
file and line; the exit code is then 1.

    scripts/check_layers.py [HOST_DIR]      (default: the host/ beside this script)
    scripts/check_layers.py --self-test     (shows that a violation is caught)
"""
import pathlib
import re
import sys
import tempfile

BASE = {"util"}
LOW = {"experiment", "data", "runtime", "conformance"}
# What each folder may include besides itself.
ALLOWED = {
    "util": set(),
    "runtime": BASE,
    "data": BASE,
    "conformance": BASE | {"runtime"},
    "experiment": BASE | {"data", "runtime"},
    "model": BASE | LOW,
    "train": BASE | LOW | {"model"},
    "analysis": BASE | LOW | {"model", "train"},
    "interop": BASE | LOW | {"model", "train"},
    "launch": BASE | LOW | {"model", "train"},
    "cli": BASE | LOW | {"model", "train", "analysis", "interop", "launch"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def violations(host: pathlib.Path):
    found = []
    for path in sorted(host.rglob("*")):
        if path.suffix not in (".cpp", ".hpp") or not path.is_file():
            continue
        folder = path.relative_to(host).parts[0]
        if folder not in ALLOWED:
            found.append(f"{path}: folder host/{folder}/ has no place in the layering (add it to {__file__})")
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = match.group(1)
            if target == folder or target not in ALLOWED:  # its own folder, or not a host folder (e.g. mixlab/)
                continue
            if target not in ALLOWED[folder]:
                found.append(f"{path}:{number}: host/{folder}/ includes {target}/, a folder "
                             f"{'above' if folder in ALLOWED[target] else 'beside'} it")
    return found


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        host = pathlib.Path(tmp)
        (host / "data").mkdir()
        (host / "model").mkdir()
        (host / "data" / "x.cpp").write_text('#include "data/y.hpp"\n#include "util/log.hpp"\n#include "model/model.hpp"\n')
        (host / "model" / "m.cpp").write_text('#include "experiment/config.hpp"\n#include <mixlab/plugin.hpp>\n')
        found = violations(host)
        expected = [f"{host / 'data' / 'x.cpp'}:3: host/data/ includes model/, a folder above it"]
        if found != expected:
            print("check_layers self-test failed: got", found, "expected", expected)
            return 1
    print("check_layers self-test: a data/ file including model/ is reported, allowed includes are not")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    host = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "host"
    found = violations(host)
    for v in found:
        print(v)
    if found:
        print(f"check_layers: {len(found)} include(s) break the host's layering")
        return 1
    print(f"check_layers: every include under {host} respects the layering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
