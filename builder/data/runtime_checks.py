"""Runtime checks, run *inside* the verify container by the archive's own interpreter.

Usage: python3 runtime_checks.py PREFIX CONFIG_JSON
Prints one JSON list of {"check", "ok", "level", "detail", "path"} objects.
Python 3.8+ syntax, stdlib only: this file is not part of the builder's runtime.
"""

import glob
import importlib
import json
import os
import re
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


def tcl_interp():
    # Tcl finds its script library (init.tcl) relative to the executable, in
    # <prefix>/lib/tclX.Y: no TCL_LIBRARY, and the library it uses must be the archive's.
    import _tkinter
    for var in ("TCL_LIBRARY", "TK_LIBRARY"):
        os.environ.pop(var, None)
    import tkinter
    where = os.path.join(os.path.basename(PREFIX), "lib", "tcl" + _tkinter.TCL_VERSION)
    try:
        tcl = tkinter.Tcl()
        level = tcl.eval("info patchlevel")
        library = tcl.eval("set tcl_library")
    except tkinter.TclError as e:
        raise AssertionError("tkinter.Tcl() fails without Tcl's script library %s: %s"
                             % (where, " ".join(str(e).split())[:300])) from None
    inside = os.path.realpath(library).startswith(os.path.realpath(PREFIX) + os.sep)
    assert inside, "Tcl uses the script library %s, not the archive's %s" % (library, where)
    # Tk (no display here to load it) looks for tk.tcl beside Tcl's library (tcl_findLibrary).
    tk = os.path.join(os.path.dirname(library), "tk" + _tkinter.TK_VERSION)
    assert os.path.isfile(os.path.join(tk, "tk.tcl")), "no tk.tcl in %s" % os.path.join(
        os.path.basename(PREFIX), os.path.relpath(tk, PREFIX))
    return "Tcl %s, script library %s" % (level, where)


TCL_LIBRARY_PROBE = "import tkinter; print(tkinter.Tcl().eval('set tcl_library'))"


def tcl_in_venv():
    # A venv's python is not in the archive's bin/: Tcl's executable-relative search misses
    # lib/tclX.Y, and the archive's tkinter has to say where it is.
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        venv = os.path.join(tmp, "venv")
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True,
                       capture_output=True, timeout=600)
        env = {k: v for k, v in os.environ.items() if k not in ("TCL_LIBRARY", "TK_LIBRARY")}
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", TCL_LIBRARY_PROBE],
                           capture_output=True, timeout=600, env=env)
    if r.returncode != 0:
        raise AssertionError("tkinter.Tcl() fails in a virtual environment: %s" % " ".join(
            r.stderr.decode("utf-8", "replace").split())[-300:])
    library = r.stdout.decode("utf-8", "replace").strip()
    assert os.path.realpath(library).startswith(os.path.realpath(PREFIX) + os.sep), (
        "Tcl in a virtual environment uses the script library %s" % library)
    return "Tcl in a virtual environment uses %s" % os.path.join(
        os.path.basename(PREFIX), os.path.relpath(library, PREFIX))


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


STDLIB = sysconfig.get_path("stdlib")
PLACEHOLDER = "/install"  # what relocate writes for the build prefix (uv rewrites it)
PLACEHOLDER_TOKEN = re.compile(r"""(?:^|(?<=[\s'"=:,(])|(?<=-[LIR]))/install(?=/|\s|$|['":;,)])""")


def _details_path(base, value):
    return os.path.normpath(value if os.path.isabs(value) else os.path.join(base, value))


def build_details():
    """PEP 739's build-details.json (3.14): its paths resolve here, to files that exist,
    and agree with sys and sysconfig."""
    path = os.path.join(STDLIB, "build-details.json")
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    base = _details_path(os.path.dirname(path), doc["base_prefix"])
    bad = []
    if not same(base, sys.base_prefix):
        bad.append("base_prefix resolves to %s, not sys.base_prefix %s" % (base, sys.base_prefix))
    config = sysconfig.get_config_vars()
    expect = {
        "base_interpreter": os.path.join(sysconfig.get_path("scripts"),
                                         "python" + config["VERSION"]),
        "libpython.dynamic": os.path.join(config["LIBDIR"], config.get("LDLIBRARY") or ""),
        "c_api.headers": config["INCLUDEPY"],
        "c_api.pkgconfig_path": config.get("LIBPC") or "",
    }
    for key in ("base_interpreter", "libpython.dynamic", "libpython.dynamic_stableabi",
                "libpython.static", "c_api.headers", "c_api.pkgconfig_path"):
        section, _, name = key.rpartition(".")
        holder = doc.get(section, {}) if section else doc
        if name not in holder:
            continue
        where = _details_path(base, holder[name])
        if not os.path.exists(where):
            bad.append("%s %r resolves to %s, which does not exist" % (key, holder[name], where))
        elif key in expect and not same(where, expect[key]):
            bad.append("%s resolves to %s; sysconfig says %s" % (key, where, expect[key]))
    if doc.get("platform") != sysconfig.get_platform():
        bad.append("platform %r; sysconfig says %r" % (doc.get("platform"),
                                                        sysconfig.get_platform()))
    assert not bad, "; ".join(bad)
    return "%d paths resolve under %s" % (len(expect), base)


def sysconfig_json():
    """3.14's _sysconfig_vars_*.json, the placeholder read as this prefix, agrees with the
    live sysconfig.get_config_vars() (the keys CPython's test_sysconfigdata_json ignores
    are left out: userbase; projectbase when the interpreter is not in BINDIR)."""
    names = sorted(n for n in os.listdir(STDLIB)
                   if n.startswith("_sysconfig_vars_") and n.endswith(".json"))
    with open(os.path.join(STDLIB, names[0]), encoding="utf-8") as f:
        data = json.load(f)
    live = sysconfig.get_config_vars()
    ignore = {"userbase"}
    if os.path.dirname(sys.executable) != live.get("BINDIR"):
        ignore.add("projectbase")
    differ = []
    for key, value in sorted(data.items()):
        if key in ignore:
            continue
        got = live.get(key)
        if isinstance(value, str):
            value = PLACEHOLDER_TOKEN.sub(lambda _: sys.base_prefix, value)
            if isinstance(got, str) and os.path.isabs(value) and same(got, value):
                continue
        if got != value:
            differ.append("%s: json %r, live %r" % (key, value, got))
    assert not differ, "%s disagrees with sysconfig.get_config_vars(): %s" % (
        names[0], "; ".join(differ[:8]) + (" ..." if len(differ) > 8 else ""))
    return "%s: %d keys agree" % (names[0], len(data) - len(ignore & set(data)))
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
if os.path.isfile(os.path.join(STDLIB, "build-details.json")):
    check("build-details", build_details, path=os.path.join(STDLIB, "build-details.json"))
if any(n.startswith("_sysconfig_vars_") and n.endswith(".json") for n in os.listdir(STDLIB)):
    check("sysconfig-json", sysconfig_json)
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

if "_tkinter" in present:
    check("tkinter-tcl", tcl_interp, path=os.path.join(PREFIX, "lib"))
    check("tkinter-tcl-venv", tcl_in_venv, path=os.path.join(PREFIX, "lib"))

for module in CONFIG.get("required", []):
    check("required:" + module, lambda m=module: importlib.import_module(m) and None)
for module in CONFIG.get("expected", []):
    check("expected:" + module, lambda m=module: importlib.import_module(m) and None,
          level="warning")
# Packages standing on an extension (compression.zstd on _zstd): when the extension is in
# lib-dynload the package must import; otherwise at the level the recipe gave it.
for item in CONFIG.get("imports", []):
    module, extension = item["module"], item["extension"]
    check("import:" + module, lambda m=module: importlib.import_module(m) and None,
          level="error" if extension in present else item.get("level", "warning"))

print(json.dumps(RESULTS))
