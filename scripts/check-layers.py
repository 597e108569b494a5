#!/usr/bin/env python3
"""The service crate's layers: each top-level module of crates/referrers-sidecar/src may use
only modules of the layers below its own (not its peers, not those above), so the crate reads
top-down and no import circle can form. Exits 1 naming each import that breaks the order, a
module no layer names, or a circle.

    scripts/check-layers.py               (make lint)
    scripts/check-layers.py --self-test   plants an upward import and a circle in a copy of the
                                          source and checks that both are caught (make lint)
"""

import os
import re
import shutil
import sys
import tempfile

# Top to bottom. A module may use any module of a later line, none of its own line or above.
LAYERS = [
    ["cli"],  # the command line: serve, check-config, the operator commands
    ["app"],  # the composition root: builds every part and runs it
    ["http"],  # the only actix code: routes, AppState, error bodies
    ["referrers", "operator", "webhook"],  # the use cases
    ["warming"],  # fetches an artifact's upstream referrers ahead of its verification
    ["store_in_harbor"],  # pulls upstream referrers into Harbor, in the background
    ["serving"],  # the one serving decision and Harbor's facts
    ["replicas"],  # purges spread to every replica
    ["cache"],  # tiers, single flight, refresh
    ["upstream"],  # registries: targets, the fetch, breakers and rests
    ["harbor", "metrics", "telemetry"],  # the Core seam, Prometheus, logs and traces
    ["breaker", "clock", "config", "outcome", "pace"],  # leaves
]

SOURCE = os.path.join("crates", "referrers-sidecar", "src")
# The crate's roots: they declare the modules and use none.
ROOTS = {"lib", "main"}

USE = re.compile(r"crate::\s*(\{[^}]*\}|\w+)")


def uses(text):
    """The top-level modules a file's code names through `crate::` (comments left out)."""
    code = re.sub(r"//[^\n]*", "", text)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    found = set()
    for match in USE.finditer(code):
        group = match.group(1)
        names = group[1:-1].split(",") if group.startswith("{") else [group]
        for name in names:
            head = re.match(r"\s*(\w+)", name)
            if head and head.group(1) != "self":
                found.add(head.group(1))
    return found


def graph(source):
    """{module: {used module: [files that use it]}} for every top-level module."""
    edges = {}
    for directory, _, files in os.walk(source):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, source)
            module = relative.split(os.sep)[0].removesuffix(".rs")
            with open(path, encoding="utf-8") as file:
                used = uses(file.read())
            edges.setdefault(module, {})
            for other in used - {module}:
                edges[module].setdefault(other, []).append(relative)
    return edges


def circle(edges):
    """One import circle among the modules, as a list of modules, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for other in sorted(edges.get(module, {})):
            if state.get(other) == "open":
                return path[path.index(other):] + [other]
            if other not in state:
                found = visit(other, path + [other])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def check(source):
    """The problems of the source under `source`: a list of lines, empty when none."""
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    edges = graph(source)
    problems = []
    for module in sorted(edges):
        if module in ROOTS:
            continue
        if module not in layer_of:
            problems.append(f"{module}: in no layer; add it to LAYERS in scripts/check-layers.py")
            continue
        for other, files in sorted(edges[module].items()):
            if other not in layer_of:
                continue
            if layer_of[other] <= layer_of[module]:
                where = "a peer" if layer_of[other] == layer_of[module] else "a layer above"
                problems.append(
                    f"{module} uses {other}, {where} ({', '.join(sorted(set(files)))})"
                )
    found = circle({m: e for m, e in edges.items() if m not in ROOTS})
    if found:
        problems.append("import circle: " + " -> ".join(found))
    return problems


def self_test():
    """Plants an upward import, then a circle, in copies of the source: each must be caught."""
    if check(SOURCE):
        print("check-layers --self-test: the source itself fails; run without --self-test")
        return 1
    plants = {
        "an upward import": (
            "cache uses serving, a layer above",
            [("cache/mod.rs", "use crate::serving::Serving as _Planted;\n")],
        ),
        "a circle": (
            "import circle: clock -> outcome -> clock",
            [
                ("clock.rs", "use crate::outcome::Tier as _Planted;\n"),
                ("outcome.rs", "use crate::clock::Clock as _Planted;\n"),
            ],
        ),
    }
    for what, (expected, files) in plants.items():
        with tempfile.TemporaryDirectory() as scratch:
            copy = os.path.join(scratch, "src")
            shutil.copytree(SOURCE, copy)
            for name, line in files:
                with open(os.path.join(copy, name), "a", encoding="utf-8") as file:
                    file.write(line)
            caught = [p for p in check(copy) if p.startswith(expected)]
            if not caught:
                print(f"check-layers --self-test: {what} went unnoticed")
                return 1
            print(f"check-layers --self-test: {what} is caught: {caught[0]}")
    return 0


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    problems = check(SOURCE)
    for problem in problems:
        print(f"check-layers: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-layers: ok ({len(LAYERS)} layers, no upward import, no circle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
