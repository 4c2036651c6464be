/*
 * musl-pbs launcher: bin/python3.X of a relocatable musl CPython archive.
 *
 * Alpine's python3.X is a small program linked against libpython3.X.so.1.0 and found
 * through its RPATH, $ORIGIN/../lib. That breaks in three ways once the tree is relocated:
 *   - a copy of the program (python -m venv --copies, venv.create(), cp, virtualenv
 *     --copies) looks for libpython in <copy>/../lib and exits 127;
 *   - started under another argv[0] (exec -a, Popen(executable=...)), CPython's getpath
 *     cannot find the program from that name and falls back to the compiled-in /usr;
 *   - without /proc, musl cannot expand the main program's $ORIGIN (it reads
 *     /proc/self/exe) and takes any system libpython instead.
 * This launcher links only libc. It finds its own path (/proc/self/exe, else AT_EXECFN,
 * else argv[0]), loads libpython by absolute path from <dir>/../lib, or from the home of
 * the pyvenv.cfg beside a copy, else from LD_LIBRARY_PATH, else the one its parent process
 * loaded (MUSL_PBS_LIBPYTHON, which it sets for its children), and calls Py_BytesMain.
 * An argv[0] that does not name this very file is replaced with the path execve was
 * given (AT_EXECFN, when it leads here: a venv's link keeps its venv), else with the
 * launcher's own, so getpath finds the prefix.
 *
 * The libpython file name is not compiled in: musl-pbs writes it into CONFIG at build
 * time (builder/stages/launcher.py). Built by tools/build_launchers.py with zig cc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAG_SIZE 32
#define NAME_SIZE 96
#define CFG_CAP 65536
/* The absolute path of the libpython this process loaded, for a lone copy it starts. */
#define LIBPYTHON_VAR "MUSL_PBS_LIBPYTHON"

/* The tag is found by musl-pbs, which writes the libpython file name after it. */
struct launcher_config {
    char tag[TAG_SIZE];
    char libpython[NAME_SIZE];
};
__attribute__((used)) static volatile const struct launcher_config CONFIG = {
    "musl-pbs-launcher-libpython:v1", ""};

typedef int (*bytes_main_fn)(int, char **);

static const char *progname = "python";

static _Noreturn void fail(const char *what, const char *detail) {
    fprintf(stderr, "%s: %s%s%s\n", progname, what, detail ? ": " : "", detail ? detail : "");
    exit(127);
}

static int join(char *out, const char *dir, const char *rest) {
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, rest);
    return n > 0 && n < PATH_MAX;
}

static int is_exec_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* What getpath does with a name without a slash: the first executable file in $PATH. */
static int search_path(const char *name, char *out) {
    const char *path = getenv("PATH");
    if (path == NULL || *name == '\0') return 0;
    for (const char *p = path;; ) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int n = len ? snprintf(out, PATH_MAX, "%.*s/%s", (int)len, p, name)
                    : snprintf(out, PATH_MAX, "%s", name);
        if (n > 0 && n < PATH_MAX && is_exec_file(out)) return 1;
        if (end == NULL) return 0;
        p = end + 1;
    }
}

/* Where argv[0] leads, as getpath would follow it (no realpath). */
static int argv0_file(const char *argv0, char *out) {
    if (argv0 == NULL || *argv0 == '\0') return 0;
    if (strchr(argv0, '/')) return snprintf(out, PATH_MAX, "%s", argv0) < PATH_MAX;
    return search_path(argv0, out);
}

/* The launcher's own path, symbolic links resolved. */
static int self_path(const char *argv0, char *out) {
    char tmp[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", out, PATH_MAX - 1);
    if (n > 0 && n < PATH_MAX - 1) {
        out[n] = '\0';
        return 1;
    }
    const char *execfn = (const char *)getauxval(AT_EXECFN);
    if (execfn && *execfn && realpath(execfn, out)) {
        return 1;
    }
    if (argv0_file(argv0, tmp) && realpath(tmp, out)) {
        return 1;
    }
    return 0;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "home = <dir>" of a pyvenv.cfg (the first, as getpath reads it), into out. */
static int venv_home(const char *cfg, char *out) {
    static char buf[CFG_CAP + 1];
    int fd = open(cfg, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t total = 0, n;
    while (total < CFG_CAP && (n = read(fd, buf + total, CFG_CAP - total)) > 0) total += n;
    close(fd);
    buf[total] = '\0';
    for (char *line = buf; line && *line; ) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            char *k = line, *ke = eq, *v = eq + 1, *ve = eq + strlen(eq);
            while (k < ke && (*k == ' ' || *k == '\t')) k++;
            while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t' || ke[-1] == '\r')) ke--;
            while (*v == ' ' || *v == '\t') v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r')) ve--;
            if (ke - k == 4 && strncasecmp(k, "home", 4) == 0 && ve > v) {
                int len = (int)(ve - v);
                return snprintf(out, PATH_MAX, "%.*s", len, v) < PATH_MAX;
            }
        }
        line = next;
    }
    return 0;
}

/* libpython of a venv's home (the base interpreter's bin directory). */
static int from_home(const char *home, const char *self_name, const char *lib, char *out) {
    char exe[PATH_MAX], real[PATH_MAX], rel[PATH_MAX];
    const char *names[4];
    names[0] = self_name;
    names[1] = lib + 3;  /* "libpython3.X.so.1.0" -> the python3.X it belongs to */
    names[2] = "python3";
    names[3] = "python";
    if (snprintf(rel, sizeof rel, "../lib/%s", lib) >= (int)sizeof rel) return 0;
    if (join(out, home, rel) && exists(out)) return 1;
    /* home may be a directory of links to the base interpreter (/usr/local/bin). */
    for (int i = 0; i < 4; i++) {
        char name[NAME_SIZE];
        snprintf(name, sizeof name, "%s", names[i]);
        if (i == 1) {
            char *so = strstr(name, ".so");
            if (so == NULL) continue;
            *so = '\0';
        }
        if (!join(exe, home, name) || realpath(exe, real) == NULL) continue;
        char *slash = strrchr(real, '/');
        if (slash == NULL) continue;
        *slash = '\0';
        if (join(out, real, rel) && exists(out)) return 1;
    }
    return 0;
}

/* Does getpath find a standard library from <dir>? Its landmark lib/python3.X/os.py (or
 * .pyc) in <dir> or any directory above it (getpath's search_up). */
static int stdlib_above(const char *dir, const char *lib) {
    char up[PATH_MAX], probe[PATH_MAX], minor[NAME_SIZE];
    snprintf(minor, sizeof minor, "%s", lib + 3);  /* python3.X.so.1.0 */
    char *so = strstr(minor, ".so");
    if (so) *so = '\0';
    snprintf(up, sizeof up, "%s", dir);
    for (;;) {
        for (int pyc = 0; pyc < 2; pyc++) {
            int n = snprintf(probe, sizeof probe, "%s/lib/%s/os.py%s", up, minor,
                             pyc ? "c" : "");
            if (n > 0 && n < (int)sizeof probe && exists(probe)) return 1;
        }
        char *slash = strrchr(up, '/');
        if (slash == NULL || up[0] == '\0') return 0;
        *slash = '\0';
    }
}

int main(int argc, char **argv) {
    char self[PATH_MAX], dir[PATH_MAX], lib[NAME_SIZE], path[PATH_MAX], cfg[PATH_MAX];
    char home[PATH_MAX], found[PATH_MAX], tried[3 * PATH_MAX + 64];
    static char *fallback_argv[2];

    if (argc > 0 && argv[0] && *argv[0]) {
        const char *base = strrchr(argv[0], '/');
        progname = base ? base + 1 : argv[0];
    }
    for (int i = 0; i < NAME_SIZE; i++) lib[i] = CONFIG.libpython[i];
    lib[NAME_SIZE - 1] = '\0';
    if (lib[0] == '\0' || strchr(lib, '/'))
        fail("this launcher was not set up (musl-pbs writes the libpython name into it)",
             NULL);

    if (!self_path(argc > 0 ? argv[0] : NULL, self))
        fail("cannot find its own path", "/proc/self/exe is unreadable (no /proc mounted?), "
             "and neither AT_EXECFN nor argv[0] names this program");
    snprintf(dir, sizeof dir, "%s", self);
    char *slash = strrchr(dir, '/');
    const char *self_name = slash ? slash + 1 : self;
    char name_buf[NAME_SIZE];
    snprintf(name_buf, sizeof name_buf, "%s", self_name);
    if (slash) *slash = '\0';

    /* 1. The archive's own layout: <prefix>/bin/python3.X, <prefix>/lib/libpython. */
    int ok = snprintf(path, sizeof path, "%s/../lib/%s", dir, lib) < (int)sizeof path
             && exists(path);
    snprintf(tried, sizeof tried, "%s", path);
    /* 2. A copy in a venv: the home named by pyvenv.cfg beside it. */
    for (int i = 0; !ok && i < 2; i++) {
        if (!join(cfg, dir, i == 0 ? "../pyvenv.cfg" : "pyvenv.cfg") || !venv_home(cfg, home))
            continue;
        if (home[0] != '/') {  /* relative to the directory of the pyvenv.cfg */
            char rel[PATH_MAX];
            snprintf(rel, sizeof rel, "%s", home);
            if (!join(home, dir, i == 0 ? "../" : ".") || !join(home, home, rel)) continue;
        }
        if (from_home(home, name_buf, lib, found)) {
            snprintf(path, sizeof path, "%s", found);
            ok = 1;
        } else {
            size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, ", and from home = %s in %s",
                     home, cfg);
        }
    }
    /* 3. Where the original program would also have looked: LD_LIBRARY_PATH (last here,
     *    so the archive's own libpython wins; ignored for setuid programs, as musl does). */
    const char *ldpath = getauxval(AT_SECURE) ? NULL : getenv("LD_LIBRARY_PATH");
    for (const char *p = ldpath; !ok && p && *p; ) {
        size_t len = strcspn(p, ":\n");
        if (len && snprintf(path, sizeof path, "%.*s/%s", (int)len, p, lib) < (int)sizeof path
            && exists(path))
            ok = 2;
        p += len;
        if (*p) p++;
    }
    if (!ok && ldpath && *ldpath) {
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, ", and in LD_LIBRARY_PATH");
    }
    /* 4. A lone copy started by one of our interpreters: the libpython its parent loaded
     *    (a copy run from a shell has no such parent; it fails below). */
    const char *inherited = getauxval(AT_SECURE) ? NULL : getenv(LIBPYTHON_VAR);
    if (!ok && inherited && inherited[0] == '/') {
        const char *base = strrchr(inherited, '/') + 1;
        if (strcmp(base, lib) == 0 && exists(inherited) &&
            snprintf(path, sizeof path, "%s", inherited) < (int)sizeof path)
            ok = 2;
    }
    if (!ok)
        fail("cannot find libpython: looked for", tried);
    if (ok > 1 && !stdlib_above(dir, lib))
        fail("a lone copy with no standard library above it (lib/python3.X/os.py): CPython "
             "would fall back to the compiled-in /usr; not started", path);
    /* What a lone copy of this program started by this process will find (step 4). */
    if (realpath(path, found)) setenv(LIBPYTHON_VAR, found, 1);

    void *handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (handle == NULL) fail("cannot load libpython", dlerror());
    bytes_main_fn bytes_main = (bytes_main_fn)dlsym(handle, "Py_BytesMain");
    if (bytes_main == NULL) fail("libpython has no Py_BytesMain", dlerror());

    /* getpath finds the prefix from argv[0]: it must lead to this very file. */
    struct stat me, other;
    char arg0[PATH_MAX];
    if (argc < 1 || argv[0] == NULL) {
        fallback_argv[0] = self;
        fallback_argv[1] = NULL;
        argc = 1;
        argv = fallback_argv;
    } else if (stat(self, &me) == 0 &&
               !(argv0_file(argv[0], arg0) && stat(arg0, &other) == 0 &&
                 other.st_dev == me.st_dev && other.st_ino == me.st_ino)) {
        /* The path execve was given keeps a venv's symbolic link (its pyvenv.cfg). */
        char *execfn = (char *)getauxval(AT_EXECFN);
        argv[0] = execfn && stat(execfn, &other) == 0 && other.st_dev == me.st_dev &&
                  other.st_ino == me.st_ino ? execfn : self;
    }
    return bytes_main(argc, argv);
}
