#!/usr/bin/env python3
"""Runs every postern test and ends with the line "N passed, M failed".

1. C unit tests: every build/<variant>/tests/test_* binary. Each prints
   "RESULT <passed> <failed>" as its last line.
2. Protocol and interop tests: every test_* function in
   tests/protocol/test_*.py and tests/interop/test_*.py. They start real
   servers on 127.0.0.1 with ports they pick (tests/lib/harness.py).

Usage: tests/run.py --build build/asan [-k SUBSTRING] [--unit-only]
"""
import argparse
import glob
import importlib.util
import os
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))


def run_unit(binary, totals):
    name = os.path.basename(binary)
    start = time.monotonic()
    try:
        proc = subprocess.run([binary], cwd=ROOT, capture_output=True, text=True,
                              timeout=600, errors="replace")
    except subprocess.TimeoutExpired:
        print(f"FAIL unit/{name}: timed out")
        totals["failed"] += 1
        return
    passed = failed = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            _, p, f = line.split()
            passed, failed = int(p), int(f)
    elapsed = time.monotonic() - start
    if passed is None or proc.returncode not in (0, 1) or (proc.returncode == 1 and not failed):
        print(f"FAIL unit/{name}: crashed (exit {proc.returncode})")
        sys.stdout.write(proc.stdout[-4000:])
        sys.stdout.write(proc.stderr[-8000:])
        totals["failed"] += 1
        return
    totals["passed"] += passed
    totals["failed"] += failed
    status = "ok  " if failed == 0 else "FAIL"
    print(f"{status} unit/{name}: {passed} passed, {failed} failed ({elapsed:.1f}s)")
    if failed:
        for line in proc.stdout.splitlines():
            if line.startswith("FAIL"):
                print("     " + line)
        sys.stdout.write(proc.stderr[-8000:])


def load_module(path):
    name = "t_" + os.path.relpath(path, ROOT).replace(os.sep, "_")[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python_tests(pattern, keyword, totals):
    import harness
    for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
        rel = os.path.relpath(path, ROOT)
        try:
            module = load_module(path)
        except Exception:
            print(f"FAIL {rel}: cannot load")
            traceback.print_exc(file=sys.stdout)
            totals["failed"] += 1
            continue
        for fname in sorted(n for n in dir(module) if n.startswith("test_")):
            full = f"{rel}::{fname}"
            if keyword and keyword not in full:
                continue
            start = time.monotonic()
            try:
                result = getattr(module, fname)()
                harness.check_all_servers_clean()
            except harness.Skip as skip:
                print(f"skip {full}: {skip}")
                totals["skipped"] += 1
                harness.stop_all_servers()
                continue
            except Exception:
                print(f"FAIL {full} ({time.monotonic() - start:.1f}s)")
                traceback.print_exc(file=sys.stdout)
                harness.dump_server_logs()
                totals["failed"] += 1
                harness.stop_all_servers()
                continue
            finally:
                pass
            try:
                harness.stop_all_servers(check=True)
            except Exception:
                print(f"FAIL {full}: server did not stop cleanly")
                traceback.print_exc(file=sys.stdout)
                harness.dump_server_logs()
                totals["failed"] += 1
                continue
            print(f"ok   {full} ({time.monotonic() - start:.1f}s)")
            totals["passed"] += 1


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build/asan")
    parser.add_argument("-k", dest="keyword", default=None)
    parser.add_argument("--unit-only", action="store_true")
    parser.add_argument("--no-unit", action="store_true")
    args = parser.parse_args()
    build = os.path.join(ROOT, args.build)
    os.environ["POSTERN_BIN"] = os.path.join(build, "postern")
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    started = time.monotonic()
    if not args.no_unit:
        for binary in sorted(glob.glob(os.path.join(build, "tests", "test_*"))):
            if os.access(binary, os.X_OK) and not binary.endswith(".d"):
                if args.keyword and args.keyword not in binary:
                    continue
                run_unit(binary, totals)
    if not args.unit_only:
        run_python_tests("tests/protocol/test_*.py", args.keyword, totals)
        run_python_tests("tests/interop/test_*.py", args.keyword, totals)
    print(f"time: {time.monotonic() - started:.0f}s")
    line = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    print(line)
    return 0 if totals["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
