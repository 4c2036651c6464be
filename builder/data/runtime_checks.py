"""Runtime checks, run *inside* the verify container by the archive's own interpreter.

Usage: python3 runtime_checks.py PREFIX CONFIG_JSON
Prints one JSON list of {"check", "ok", "level", "detail", "path"} objects.
Python 3.8+ syntax, stdlib only: this file is not part of the builder's runtime.
"""

import glob
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile

PREFIX = sys.argv[1]
CONFIG = json.loads(sys.argv[2])
RESULTS = []


def check(name, fn, path="", level="error"):
    try:
        detail = fn()
        RESULTS.append({"check": name, "ok": True, "level": level,
                        "detail": "" if detail is None else str(detail), "path": path})
    except BaseException as e:  # every failure is a result
        if type(e).__name__ == "Skipped":
            level = "skipped"
        RESULTS.append({"check": name, "ok": False, "level": level,
                        "detail": "%s: %s" % (type(e).__name__, e), "path": path})


def same(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def prefix():
    assert same(sys.prefix, PREFIX), "sys.prefix is %s, expected %s" % (sys.prefix, PREFIX)
    assert same(sys.base_prefix, PREFIX), "sys.base_prefix is %s" % sys.base_prefix
    assert same(sys.executable, os.path.join(PREFIX, "bin", os.path.basename(sys.executable)))
    return sys.prefix


def zlib_roundtrip():
    import zlib
    data = b"musl-pbs " * 1000
    assert zlib.decompress(zlib.compress(data)) == data
    return zlib.ZLIB_RUNTIME_VERSION


def ctypes_callback():
    import ctypes
    libc = ctypes.CDLL(None)
    cmp_t = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                             ctypes.POINTER(ctypes.c_int))
    values = (ctypes.c_int * 6)(5, 1, 4, 2, 6, 3)
    calls = []

    def cmp(a, b):
        calls.append(1)
        return a[0] - b[0]

    libc.qsort(values, len(values), ctypes.sizeof(ctypes.c_int), cmp_t(cmp))
    assert list(values) == [1, 2, 3, 4, 5, 6], list(values)
    assert calls, "the callback was never called"
    return "qsort sorted through %d callbacks" % len(calls)


def musl_abi():
    multiarch = getattr(sys.implementation, "_multiarch", "")
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ""
    assert "musl" in multiarch, "sys.implementation._multiarch is %r" % multiarch
    assert "-musl" in suffix, "EXT_SUFFIX is %r" % suffix
    return "%s %s" % (multiarch, suffix)


# Deep recursion in a thread. Each level goes through C (map calls back into Python), so it
# uses C stack and not only Python frames (3.11+ runs Python-to-Python calls without it).
# musl's default thread stack is 128 KiB; Alpine builds python3 with THREAD_STACK_SIZE and
# -Wl,-z,stack-size of 2 MiB. Measured on x86_64 (~330 bytes a level): 400 levels already
# crash with 128 KiB and with 256 KiB 800 do; 2 MiB takes 1400. 1000 lies between, and
# under CPython 3.12's C recursion limit (1500).
THREAD_DEPTH = 1000
THREAD_PROBE = """
import sys, threading
size, depth = int(sys.argv[1]), int(sys.argv[2])
if size:
    threading.stack_size(size)
sys.setrecursionlimit(depth + 200)
def down(n):
    return list(map(down, [n - 1]))[0] + 1 if n else 0
got = []
t = threading.Thread(target=lambda: got.append(down(depth)))
t.start()
t.join()
sys.exit(0 if got == [depth] else 1)
"""


def thread_stack():
    size = int(CONFIG.get("thread_stack_size") or 0)
    what = "threading.stack_size(%d)" % size if size else "the default thread stack size"
    r = subprocess.run([sys.executable, "-c", THREAD_PROBE, str(size), str(THREAD_DEPTH)],
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        if r.returncode < 0:
            try:
                how = "was killed by %s" % signal.Signals(-r.returncode).name
            except ValueError:
                how = "was killed by signal %d" % -r.returncode
        else:
            tail = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            how = "exited %d%s" % (r.returncode, (": " + tail[0]) if tail else "")
        raise AssertionError(
            "recursion %d deep in a threading.Thread with %s %s (musl's default thread stack "
            "is 128 KiB; Alpine's python3 asks for 2 MiB)" % (THREAD_DEPTH, what, how))
    return "recursion %d deep in a threading.Thread with %s" % (THREAD_DEPTH, what)


def sysconfig_paths():
    bad = {}
    for key in ("LIBDIR", "INCLUDEPY", "BINDIR", "LIBPL", "LIBDEST", "prefix"):
        value = sysconfig.get_config_var(key)
        if value and not same(os.path.commonpath([os.path.realpath(value),
                                                  os.path.realpath(PREFIX)]), PREFIX):
            bad[key] = value
    for key, value in sysconfig.get_paths().items():
        if not os.path.realpath(value).startswith(os.path.realpath(PREFIX)):
            bad[key] = value
    assert not bad, "outside the prefix: %r" % bad
    return sysconfig.get_config_var("INCLUDEPY")


# The launcher (bin/python3.X, builder/stages/launcher.py): a copy works, any argv[0] finds
# the archive's prefix, and without /proc it still loads the archive's own libpython.
PRINT_PREFIX = "import sys, zlib; print(sys.prefix); print(sys.base_prefix)"


def _run(argv, **kwargs):
    r = subprocess.run(argv, capture_output=True, timeout=600, **kwargs)
    out = r.stdout.decode("utf-8", "replace").strip().splitlines()
    if r.returncode != 0:
        lines = r.stderr.decode("utf-8", "replace").strip().splitlines()
        err = [x for x in lines if "rror" in x][-3:] or lines[-3:]
        raise AssertionError("%s exited %d: %s" % (argv[0], r.returncode, " | ".join(err)))
    return out


def venv_copies():
    where = tempfile.mkdtemp(prefix="musl-pbs-copies-")
    try:
        _run([sys.executable, "-m", "venv", "--copies", "--without-pip", where])
        exe = os.path.join(where, "bin", "python")
        assert not os.path.islink(exe), "%s is a symbolic link, not a copy" % exe
        got = _run([exe, "-c", PRINT_PREFIX])
        assert same(got[0], where) and same(got[1], PREFIX), \
            "a venv made with --copies says sys.prefix %s, sys.base_prefix %s" % tuple(got)
        return "python -m venv --copies: sys.prefix %s, base %s" % tuple(got)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def unknown_argv0():
    got = _run(["musl-pbs-no-such-program", "-c", PRINT_PREFIX], executable=sys.executable)
    assert same(got[0], PREFIX), "started as argv[0] 'musl-pbs-no-such-program', " \
        "sys.prefix is %s, not %s" % (got[0], PREFIX)
    return "argv[0] 'musl-pbs-no-such-program': sys.prefix %s" % got[0]


def default_thread_stack():
    import ctypes
    want = int(CONFIG.get("default_thread_stack") or 0)
    libc = ctypes.CDLL(None)
    attr = ctypes.create_string_buffer(256)
    assert libc.pthread_attr_init(attr) == 0
    size = ctypes.c_size_t()
    libc.pthread_attr_getstacksize(attr, ctypes.byref(size))
    assert size.value >= want, "threads C code starts get %d bytes of stack by default, " \
        "below the %d the interpreter asks for (PT_GNU_STACK)" % (size.value, want)
    return "default thread stack %#x (wanted >= %#x)" % (size.value, want)


def without_proc():
    """The archive hard-linked into a chroot with no /proc (musl then cannot expand the
    main program's $ORIGIN) and a decoy system libpython in /usr/lib."""
    libname = os.path.basename(sysconfig.get_config_var("INSTSONAME") or "")
    root = tempfile.mkdtemp(prefix="musl-pbs-noproc-", dir=os.path.dirname(
        os.path.dirname(os.path.realpath(PREFIX))))
    try:
        try:
            shutil.copytree(PREFIX, os.path.join(root, "python"), symlinks=True,
                            copy_function=os.link)
        except (OSError, shutil.Error):
            shutil.rmtree(os.path.join(root, "python"), ignore_errors=True)
            shutil.copytree(PREFIX, os.path.join(root, "python"), symlinks=True)
        os.makedirs(os.path.join(root, "lib"))
        os.makedirs(os.path.join(root, "usr", "lib"))
        for loader in glob.glob("/lib/ld-musl-*.so.1"):
            shutil.copy2(loader, os.path.join(root, "lib"))
        if libname:
            with open(os.path.join(root, "usr", "lib", libname), "w") as f:
                f.write("a decoy system libpython: not an ELF file\n")
        exe = "/python/bin/" + os.path.basename(os.path.realpath(sys.executable))

        def enter():
            os.chroot(root)
            os.chdir("/")

        code = PRINT_PREFIX + "; import os; assert not os.path.exists('/proc/self')"
        try:
            got = _run([exe, "-c", code], preexec_fn=enter)
            bogus = _run(["musl-pbs-no-such-program", "-c", code], executable=exe,
                         preexec_fn=enter)
        except subprocess.SubprocessError as e:  # preexec_fn failed: no chroot here
            raise Skipped("chroot is not permitted here (CAP_SYS_CHROOT): %s" % e) from None
        assert got[0] == "/python" and bogus[0] == "/python", \
            "in a chroot without /proc, sys.prefix is %s (argv[0] %s: %s), not /python" \
            % (got[0], "musl-pbs-no-such-program", bogus[0])
        return "chroot without /proc, a decoy %s in /usr/lib: sys.prefix %s" % (
            libname, got[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Skipped(Exception):
    pass


check("prefix", prefix)
check("zlib", zlib_roundtrip)
check("ctypes-callback", ctypes_callback)
check("musl-abi", musl_abi)
check("sysconfig-paths", sysconfig_paths)
check("thread-stack", thread_stack)
check("default-thread-stack", default_thread_stack)
check("venv-copies", venv_copies)
check("argv0-prefix", unknown_argv0)
check("no-proc", without_proc)

dynload = os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")
present = set()
for name in sorted(os.listdir(dynload)) if os.path.isdir(dynload) else []:
    if not name.endswith(".so"):
        continue
    module = name.split(".", 1)[0]
    present.add(module)
    check("import:" + module, lambda m=module: importlib.import_module(m) and None,
          path=os.path.join(dynload, name))

for module in CONFIG.get("required", []):
    check("required:" + module, lambda m=module: importlib.import_module(m) and None)
for module in CONFIG.get("expected", []):
    check("expected:" + module, lambda m=module: importlib.import_module(m) and None,
          level="warning")

print(json.dumps(RESULTS))
