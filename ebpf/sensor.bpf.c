/* Memtrail sensor: syscall tracepoints -> ring buffer (bcc).
 *
 * Tracepoints only (this kernel has no kprobes). Arguments held in user memory are
 * read at sys_exit (a page not yet faulted in reads as empty at sys_enter), exec
 * filename/argv/env come from the new process image at sched_process_exec.
 * Kernel struct fields are read with explicit bpf_probe_read_kernel at offsets taken
 * from the running kernel's BTF (-DOFF_* from ebpf/btf.py), not from the installed
 * headers, which may belong to another kernel version.
 * Run-time configuration lives in maps the loader writes (config, open_prefixes,
 * path_prefixes, write_prefixes, comm_allow, host_ns); nothing in this text is substituted
 * by the loader.
 */
#include <uapi/linux/ptrace.h>
#include <linux/sched.h>
#include "sensor.h"

#ifndef OFF_TASK_REAL_PARENT
#error "kernel field offsets (-DOFF_*) are required: ebpf/btf.py supplies them"
#endif
#ifndef MT_RINGBUF_PAGES
#define MT_RINGBUF_PAGES 2048 /* 8 MiB */
#endif
/* environment scan at exec: bounded by bytes first, by strings second (docs/sensor.md) */
#define MT_ENV_SCAN_BYTES 32768
#define MT_ENV_MAX_STRINGS 384
#define MT_ENVSCAN_LEN 4096

#define MT_PROT_WRITE 0x2
#define MT_PROT_EXEC 0x4
#define MT_MAP_ANONYMOUS 0x20
#define MT_MODE_EXEC_BITS 06111 /* S_ISUID|S_ISGID|S_IXUSR|S_IXGRP|S_IXOTH */

struct mt_stash {
    __u64 a[6];
    __u32 type;
    __u32 aux;
    __u32 flags;
    __u32 pad;
};

struct mt_comm_key {
    char comm[MT_COMM_LEN];
};

struct mt_rate {
    __u64 window_ns;
    __u64 count;
};

struct mt_envbuf {
    char buf[MT_ENVSCAN_LEN];
};

BPF_RINGBUF_OUTPUT(events, MT_RINGBUF_PAGES);
BPF_ARRAY(config, __u64, MT_CFG_SLOTS);
BPF_PERCPU_ARRAY(counters, __u64, MT_CNT_SLOTS);
BPF_HASH(stash, __u32, struct mt_stash, 16384);
BPF_LPM_TRIE(open_prefixes, struct mt_prefix_key, __u8, 128);
BPF_LPM_TRIE(path_prefixes, struct mt_prefix_key, __u8, 128);
BPF_LPM_TRIE(write_prefixes, struct mt_prefix_key, __u8, 128);
BPF_PERCPU_ARRAY(envbuf, struct mt_envbuf, 1);
BPF_HASH(comm_allow, struct mt_comm_key, __u8, 256);
BPF_TABLE("lru_hash", __u64, struct mt_rate, cgroup_rate, 4096);
BPF_HASH(clone_flags, __u32, __u64, 4096);

static __always_inline __u64 cfg(__u32 slot)
{
    __u64 *v = config.lookup(&slot);
    return v ? *v : 0;
}

static __always_inline void count(__u32 slot)
{
    __u64 *v = counters.lookup(&slot);
    if (v)
        (*v)++; /* per-CPU slot: no atomics needed */
}

/* Also true until the loader has written the config (slot 0 is 0 then): the
 * tracepoints attach one by one while the rest load, and an unconfigured program
 * would report everything unfiltered and fill the ring buffer before the first poll. */
static __always_inline int is_self(void)
{
    __u64 self = cfg(MT_CFG_SELF_TGID);
    return !self || (bpf_get_current_pid_tgid() >> 32) == self;
}

/* Gate for *noisy* events only (read-only opens, read-only executable mappings,
 * connects): the comm allowlist and the per-cgroup rate limit. Events detections
 * depend on (exec, memfd, ptrace, write opens, W+X / W->X, ...) never pass here.
 * Returns 0 to drop (counted). */
static __always_inline int noisy_gate(void)
{
    __u64 limit;

    if (cfg(MT_CFG_ALLOW_COMMS)) {
        struct mt_comm_key k = {};
        bpf_get_current_comm(k.comm, sizeof(k.comm));
        if (comm_allow.lookup(&k)) {
            count(MT_CNT_FILTERED);
            return 0;
        }
    }
    limit = cfg(MT_CFG_RATE_LIMIT);
    if (limit) {
        __u64 cg = bpf_get_current_cgroup_id(), now = bpf_ktime_get_ns();
        struct mt_rate *r = cgroup_rate.lookup(&cg);
        if (!r) {
            struct mt_rate fresh = {.window_ns = now, .count = 1};
            cgroup_rate.update(&cg, &fresh);
            return 1;
        }
        if (now - r->window_ns > 1000000000ULL) {
            r->window_ns = now;
            r->count = 0;
        }
        if (__sync_fetch_and_add(&r->count, 1) >= limit) {
            count(MT_CNT_RATE_LIMITED);
            return 0;
        }
    }
    return 1;
}

static __always_inline void fill_hdr(struct mt_hdr *h, __u32 type, __s64 ret)
{
    __u64 pt = bpf_get_current_pid_tgid();
    __u64 ug = bpf_get_current_uid_gid();
    char *task = (char *)bpf_get_current_task();
    char *parent = 0, *leader = 0;
    __u32 ppid = 0;
    __u64 pstart = 0;

    bpf_probe_read_kernel(&parent, sizeof(parent), task + OFF_TASK_REAL_PARENT);
    bpf_probe_read_kernel(&ppid, sizeof(ppid), parent + OFF_TASK_TGID);
    bpf_probe_read_kernel(&leader, sizeof(leader), task + OFF_TASK_GROUP_LEADER);
    bpf_probe_read_kernel(&pstart, sizeof(pstart), leader + OFF_TASK_START_BOOTTIME);
    h->ts_ns = bpf_ktime_get_ns();
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->ret = ret;
    h->type = type;
    h->pid = pt >> 32;
    h->tid = (__u32)pt;
    h->ppid = ppid;
    h->uid = (__u32)ug;
    h->gid = ug >> 32;
    h->flags = 0;
    h->aux = 0;
    h->pstart_ns = pstart;
    bpf_get_current_comm(h->comm, sizeof(h->comm));
}

static __always_inline int stash_put_aux(__u32 type, __u32 aux, __u64 a0, __u64 a1, __u64 a2, __u64 a3,
                                         __u64 a4, __u64 a5)
{
    struct mt_stash s = {};
    __u32 tid = (__u32)bpf_get_current_pid_tgid();

    s.type = type;
    s.aux = aux;
    s.a[0] = a0;
    s.a[1] = a1;
    s.a[2] = a2;
    s.a[3] = a3;
    s.a[4] = a4;
    s.a[5] = a5;
    stash.update(&tid, &s);
    return 0;
}

static __always_inline int stash_put(__u32 type, __u64 a0, __u64 a1, __u64 a2, __u64 a3, __u64 a4, __u64 a5)
{
    return stash_put_aux(type, 0, a0, a1, a2, a3, a4, a5);
}

/* Take (and remove) this thread's stashed arguments; 0 when there are none. */
static __always_inline int stash_take(struct mt_stash *out)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    struct mt_stash *s = stash.lookup(&tid);

    if (!s)
        return 0;
    __builtin_memcpy(out, s, sizeof(*out));
    stash.delete(&tid);
    return 1;
}

static __always_inline struct mt_event *reserve_event(void)
{
    struct mt_event *e = events.ringbuf_reserve(sizeof(struct mt_event));
    if (!e)
        count(MT_CNT_LOST);
    return e;
}

static __always_inline void copy_args(struct mt_hdr *h, struct mt_stash *s)
{
    h->a[0] = s->a[0];
    h->a[1] = s->a[1];
    h->a[2] = s->a[2];
    h->a[3] = s->a[3];
    h->a[4] = s->a[4];
    h->a[5] = s->a[5];
}

/* Generic exit: one event with the integer args and, when str_arg >= 0, the user
 * string at a[str_arg] read now (after the kernel faulted it in). */
static __always_inline int emit_exit(__s64 ret, int str_arg)
{
    struct mt_stash s;
    struct mt_event *e;

    if (!stash_take(&s))
        return 0;
    e = reserve_event();
    if (!e)
        return 0;
    fill_hdr(&e->h, s.type, ret);
    copy_args(&e->h, &s);
    e->h.aux = s.aux;
    e->h.flags = s.flags;
    e->s[0] = 0;
    if (str_arg >= 0 && str_arg < 6)
        bpf_probe_read_user_str(e->s, sizeof(e->s), (void *)s.a[str_arg]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* ---- path-prefix filter (LPM trie on the first MT_PREFIX_LEN bytes) ---- */

#define MT_TRIE_OPEN 0
#define MT_TRIE_PATH 1
#define MT_TRIE_WRITE 2
/* O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND */
#define MT_O_WRITE_MASK (01 | 02 | 0100 | 01000 | 02000)

/* 1 match, 0 no match, -1 unreadable now (decide at exit). */
static __always_inline int prefix_match(int trie, const char *upath)
{
    struct mt_prefix_key k = {};
    k.prefixlen = MT_PREFIX_LEN * 8;
    if (bpf_probe_read_user_str(k.data, sizeof(k.data), upath) < 0)
        return -1;
    if (trie == MT_TRIE_OPEN)
        return open_prefixes.lookup(&k) ? 1 : 0;
    if (trie == MT_TRIE_WRITE)
        return write_prefixes.lookup(&k) ? 1 : 0;
    return path_prefixes.lookup(&k) ? 1 : 0;
}

/* Reads are reported under open_prefixes, writes (create/truncate/append too) under
 * the broader write_prefixes: persistence and tampering are writes. */
static __always_inline int open_trie(__u64 flags)
{
    return (flags & MT_O_WRITE_MASK) ? MT_TRIE_WRITE : MT_TRIE_OPEN;
}

/* ---- resolved paths: a bounded walk of the dentry + mount chain ----
 *
 * Components are written backwards into a per-CPU scratch buffer, from the file's
 * dentry up to its mount's root, then across to the mountpoint in the parent mount,
 * until the task's fs->root (so a container process gets its container-relative
 * path) or the top of the mount tree. A walk that runs out of depth or room sets
 * *trunc and leaves only the tail: never a wrong absolute path. */

#define MT_WALK_END 255 /* the walk writes buf[0..255]; buf[255] is its NUL */

/* Syscall tracepoints are faultable on recent kernels: their programs run with
 * migration but not preemption disabled, so another task's program can reuse this
 * CPU's scratch mid-walk. owner (the walker's pid_tgid, set when a walk starts) tells
 * the walker whether its result survived; if not, the result is dropped as truncated. */
struct mt_pathbuf {
    __u64 owner;
    char buf[512];
    char tmp[128];
    struct mt_prefix_key key; /* LPM key built off the stack */
};
BPF_PERCPU_ARRAY(pathbuf, struct mt_pathbuf, 1);

static __always_inline struct mt_pathbuf *scratch(void)
{
    __u32 zero = 0;
    return pathbuf.lookup(&zero);
}

/* 1 while no other walk has used this CPU's scratch since ours started */
static __always_inline int pb_mine(struct mt_pathbuf *pb)
{
    return pb->owner == bpf_get_current_pid_tgid();
}

/* Returns the start of the path in pb->buf (it ends at MT_WALK_END).
 * Two passes keep the verifier linear: the first walks the chain and records each
 * component's name pointer and length (no variable-offset writes, so the branches of
 * an iteration merge), the second copies them backwards into the buffer. */
struct mt_comp {
    const char *name;
    __u32 len;
    __u32 pad;
};
struct mt_comps {
    struct mt_comp c[MT_PATH_DEPTH_POW2];
};
BPF_PERCPU_ARRAY(pathcomps, struct mt_comps, 1);

#define MT_NOCOMP 0xFFFFFFFFu /* a mount crossing: no component at this step */

static __always_inline int walk_path(struct mt_pathbuf *pb, char *vfsmnt, char *dentry, char *task, int *trunc)
{
    char *fs = 0, *root_mnt = 0, *root_dentry = 0, *mnt_root = 0, *mnt;
    __u32 zero = 0, n = 0;
    int pos = MT_WALK_END, done = 0, pseudo = 0;
    struct mt_comps *cs = pathcomps.lookup(&zero);

    pb->owner = bpf_get_current_pid_tgid();
    pb->buf[MT_WALK_END] = 0;
    if (!cs) {
        *trunc = 1;
        return MT_WALK_END;
    }
    bpf_probe_read_kernel(&fs, sizeof(fs), task + OFF_TASK_FS);
    if (fs) {
        bpf_probe_read_kernel(&root_mnt, sizeof(root_mnt), fs + OFF_FS_ROOT_MNT);
        bpf_probe_read_kernel(&root_dentry, sizeof(root_dentry), fs + OFF_FS_ROOT_DENTRY);
    }
    mnt = vfsmnt - OFF_MOUNT_MNT; /* container_of(vfsmnt, struct mount, mnt) */
    bpf_probe_read_kernel(&mnt_root, sizeof(mnt_root), vfsmnt + OFF_VFSMOUNT_ROOT);
    /* first pass: step i records component i (or MT_NOCOMP for a mount crossing);
     * indexing by the loop counter keeps the walked count out of the verifier's state */
#pragma clang loop unroll(disable)
    for (int i = 0; i < MT_PATH_DEPTH; i++) {
        char *parent = 0, *name = 0;
        __u32 len = 0;

        if (!dentry)
            break;
        if (dentry == root_dentry && vfsmnt == root_mnt) {
            done = 1;
            break;
        }
        n = i + 1;
        if (dentry == mnt_root) {
            char *mparent = 0;
            bpf_probe_read_kernel(&mparent, sizeof(mparent), mnt + OFF_MOUNT_PARENT);
            if (!mparent || mparent == mnt) { /* the top of this mount tree */
                n = i;
                done = 1;
                break;
            }
            bpf_probe_read_kernel(&dentry, sizeof(dentry), mnt + OFF_MOUNT_MOUNTPOINT);
            mnt = mparent;
            vfsmnt = mnt + OFF_MOUNT_MNT;
            bpf_probe_read_kernel(&mnt_root, sizeof(mnt_root), vfsmnt + OFF_VFSMOUNT_ROOT);
            cs->c[i & (MT_PATH_DEPTH_POW2 - 1)].len = MT_NOCOMP;
            continue;
        }
        bpf_probe_read_kernel(&parent, sizeof(parent), dentry + OFF_DENTRY_PARENT);
        bpf_probe_read_kernel(&len, sizeof(len), dentry + OFF_DENTRY_NAME_LEN);
        bpf_probe_read_kernel(&name, sizeof(name), dentry + OFF_DENTRY_NAME);
        cs->c[i & (MT_PATH_DEPTH_POW2 - 1)].name = name;
        cs->c[i & (MT_PATH_DEPTH_POW2 - 1)].len = len;
        if (parent == dentry) { /* a pseudo file (memfd, pipe, anon inode): no parent to name */
            pseudo = 1;
            done = 1;
            break;
        }
        dentry = parent;
    }
    if (!done)
        *trunc = 1;
    /* second pass: innermost component first, written backwards */
#pragma clang loop unroll(disable)
    for (int j = 0; j < MT_PATH_DEPTH; j++) {
        __u32 len;
        if (j >= n)
            break;
        len = cs->c[j & (MT_PATH_DEPTH_POW2 - 1)].len;
        if (len == MT_NOCOMP)
            continue;
        if (len > 254 || (int)len >= pos) {
            *trunc = 1;
            break;
        }
        pos -= len;
        pos &= 255;
        bpf_probe_read_kernel(pb->buf + pos, len & 255, cs->c[j & (MT_PATH_DEPTH_POW2 - 1)].name);
        if (pseudo && j + 1 == n)
            break; /* a pseudo file's name stands alone */
        pos -= 1;
        pos &= 255;
        pb->buf[pos] = '/';
    }
    if (pos == MT_WALK_END && done) { /* the root itself */
        pos = MT_WALK_END - 1;
        pb->buf[pos] = '/';
    }
    return pos & 255;
}

/* The struct file behind fd in the current task (0 when none). */
static __always_inline char *fd_file(char *task, __s64 fd)
{
    char *files = 0, *fdt = 0, *fdarr = 0, *file = 0;
    unsigned int max_fds = 0;

    if (fd < 0)
        return 0;
    bpf_probe_read_kernel(&files, sizeof(files), task + OFF_TASK_FILES);
    if (!files)
        return 0;
    bpf_probe_read_kernel(&fdt, sizeof(fdt), files + OFF_FILES_FDT);
    if (!fdt)
        return 0;
    bpf_probe_read_kernel(&max_fds, sizeof(max_fds), fdt + OFF_FDT_MAX_FDS);
    bpf_probe_read_kernel(&fdarr, sizeof(fdarr), fdt + OFF_FDT_FD);
    if (!fdarr || fd >= max_fds)
        return 0;
    bpf_probe_read_kernel(&file, sizeof(file), fdarr + fd * sizeof(void *));
    return file;
}

/* Resolve a struct file's path into out (MT_PATH_LEN bytes); returns MT_F_PATH_* flags. */
static __always_inline __u32 file_path(struct mt_pathbuf *pb, char *task, char *file, char *out)
{
    char *mnt = 0, *dentry = 0;
    int trunc = 0, pos;

    out[0] = 0;
    if (!file || !pb)
        return 0;
    bpf_probe_read_kernel(&mnt, sizeof(mnt), file + OFF_FILE_PATH_MNT);
    bpf_probe_read_kernel(&dentry, sizeof(dentry), file + OFF_FILE_DENTRY);
    if (!mnt || !dentry)
        return 0;
    pos = walk_path(pb, mnt, dentry, task, &trunc);
    bpf_probe_read_kernel_str(out, MT_PATH_LEN, pb->buf + pos);
    if (!pb_mine(pb))
        trunc = 1;
    return MT_F_PATH_RESOLVED | (trunc ? MT_F_PATH_TRUNC : 0);
}

/* Resolve the directory a typed path is relative to: the task's root for an absolute
 * path, else dirfd's file or (AT_FDCWD) the cwd. Returns MT_F_PATH_* flags. */
static __always_inline __u32 base_path(struct mt_pathbuf *pb, char *task, __s64 dfd, int absolute, char *out)
{
    char *fs = 0, *mnt = 0, *dentry = 0;
    int trunc = 0, pos;

    out[0] = 0;
    if (!pb)
        return 0;
    if (absolute || dfd == -100) {
        bpf_probe_read_kernel(&fs, sizeof(fs), task + OFF_TASK_FS);
        if (!fs)
            return 0;
        bpf_probe_read_kernel(&mnt, sizeof(mnt), fs + (absolute ? OFF_FS_ROOT_MNT : OFF_FS_PWD_MNT));
        bpf_probe_read_kernel(&dentry, sizeof(dentry), fs + (absolute ? OFF_FS_ROOT_DENTRY : OFF_FS_PWD_DENTRY));
    } else {
        char *file = fd_file(task, dfd);
        if (!file)
            return 0;
        bpf_probe_read_kernel(&mnt, sizeof(mnt), file + OFF_FILE_PATH_MNT);
        bpf_probe_read_kernel(&dentry, sizeof(dentry), file + OFF_FILE_DENTRY);
    }
    if (!mnt || !dentry)
        return 0;
    pos = walk_path(pb, mnt, dentry, task, &trunc);
    bpf_probe_read_kernel_str(out, MT_PATH_LEN, pb->buf + pos);
    if (!pb_mine(pb))
        trunc = 1;
    return MT_F_PATH_RESOLVED | (trunc ? MT_F_PATH_TRUNC : 0);
}

/* Shape of a typed path (its first MT_PREFIX_LEN bytes): absolute, and whether it has a
 * "." or ".." component or a "//" that a prefix check on the text would misjudge. */
#define MT_SHAPE_ABS 1
#define MT_SHAPE_ODD 2    /* "//", "/." or a leading "." */
#define MT_SHAPE_DOTDOT 4 /* ".." anywhere */
static __always_inline int typed_shape(const char *p)
{
    int shape = p[0] == '/' ? MT_SHAPE_ABS : 0;

    if (p[0] == '.')
        shape |= MT_SHAPE_ODD;
#pragma clang loop unroll(disable)
    for (int i = 0; i < MT_PREFIX_LEN - 1; i++) {
        char c = p[i & 63], d = p[(i + 1) & 63];
        if (c == 0)
            break;
        if (c == '/' && (d == '/' || d == '.'))
            shape |= MT_SHAPE_ODD;
        if (c == '.' && d == '.')
            shape |= MT_SHAPE_DOTDOT;
    }
    return shape;
}

static __always_inline int trie_lookup(int trie, struct mt_prefix_key *k)
{
    if (trie == MT_TRIE_OPEN)
        return open_prefixes.lookup(k) ? 1 : 0;
    if (trie == MT_TRIE_WRITE)
        return write_prefixes.lookup(k) ? 1 : 0;
    return path_prefixes.lookup(k) ? 1 : 0;
}

/* Prefix match of a kernel string (a resolved path). */
static __always_inline int kprefix_match(int trie, const char *kpath)
{
    struct mt_prefix_key k = {};
    k.prefixlen = MT_PREFIX_LEN * 8;
    bpf_probe_read_kernel_str(k.data, sizeof(k.data), kpath);
    return trie_lookup(trie, &k);
}

/* Prefix match of base + "/" + typed (a relative typed path against its resolved
 * directory), on the first MT_PREFIX_LEN bytes. */
static __always_inline int joined_match(struct mt_pathbuf *pb, int trie, const char *base, const char *typed)
{
    struct mt_prefix_key *k = &pb->key;
    int bl;

    k->prefixlen = MT_PREFIX_LEN * 8;
    bl = bpf_probe_read_kernel_str(pb->tmp, MT_PREFIX_LEN, base) - 1; /* without the NUL */
    if (bl < 0)
        return 0;
    if (bl < MT_PREFIX_LEN - 1) {
        __u64 at = bl;
        if (bl > 1 || pb->tmp[0] != '/') { /* "/" + "x" is "/x", not "//x" */
            asm volatile("" : "+r"(at)); /* keep the mask below: the verifier needs it */
            pb->tmp[at & 63] = '/';
            at++;
        }
        asm volatile("" : "+r"(at));
        bpf_probe_read_user_str(pb->tmp + (at & 63), MT_PREFIX_LEN, typed);
    }
    __builtin_memcpy(k->data, pb->tmp, MT_PREFIX_LEN);
    return trie_lookup(trie, k);
}

/* Opens are decided at exit on the path resolved from the returned fd's struct file,
 * so relative, dirfd-relative, symlinked and re-spelled opens of a watched file are
 * reported (a reported open needs the walk for its path anyway, so a text check at
 * entry would save nothing). A failed open has no file: its typed text decides. */
static __always_inline int open_enter(__u32 type, __u64 dfd, const char *path, __u64 flags, __u64 mode, __u64 how)
{
    if (is_self())
        return 0;
    /* aux = 1: no filter, report; 0: decide at exit on the resolved path */
    return stash_put_aux(type, !cfg(MT_CFG_OPEN_FILTER), dfd, (__u64)path, flags, mode, how, 0);
}

/* Write opens: who owns the opened file and its directory (kernel uids, as the host sees
 * them: an overlayfs inode carries its layer's mapped owner). a[5] = file uid | dir uid << 32,
 * aux bit 1 = file uid read, bit 2 = dir uid read. A non-root writer of a file or directory
 * that the host's root owns got past the kernel's permission check; in a user-namespaced
 * (rootless) container the container's own files belong to its mapped range, not to root. */
static __always_inline void open_owners(struct mt_hdr *h, char *file, char *dentry)
{
    char *inode = 0, *parent = 0, *pinode = 0;
    __u32 fuid = 0, duid = 0, known = 0;

    bpf_probe_read_kernel(&inode, sizeof(inode), file + OFF_FILE_INODE);
    if (inode && !bpf_probe_read_kernel(&fuid, sizeof(fuid), inode + OFF_INODE_UID))
        known |= 1;
    if (dentry)
        bpf_probe_read_kernel(&parent, sizeof(parent), dentry + OFF_DENTRY_PARENT);
    if (parent && parent != dentry)
        bpf_probe_read_kernel(&pinode, sizeof(pinode), parent + OFF_DENTRY_INODE);
    if (pinode && !bpf_probe_read_kernel(&duid, sizeof(duid), pinode + OFF_INODE_UID))
        known |= 2;
    h->a[5] = (__u64)fuid | ((__u64)duid << 32);
    h->aux = known;
}

static __always_inline int open_exit(__s64 ret)
{
    struct mt_stash s;
    struct mt_event2 *e;
    struct mt_pathbuf *pb;
    char *task, *file = 0;
    __u32 pflags = 0;
    int trunc = 0, pos = 0;

    if (!stash_take(&s))
        return 0;
    if (s.type == MT_OPENAT2 && s.a[4]) { /* struct open_how {u64 flags, mode, resolve} */
        __u64 how[3] = {};
        bpf_probe_read_user(how, sizeof(how), (void *)s.a[4]);
        s.a[2] = how[0];
        s.a[3] = how[1];
        s.a[4] = how[2];
    }
    char *dentry = 0;
    pb = scratch();
    task = (char *)bpf_get_current_task();
    if (ret >= 0 && pb) {
        file = fd_file(task, ret);
        if (file) {
            char *mnt = 0;
            bpf_probe_read_kernel(&mnt, sizeof(mnt), file + OFF_FILE_PATH_MNT);
            bpf_probe_read_kernel(&dentry, sizeof(dentry), file + OFF_FILE_DENTRY);
            if (mnt && dentry) {
                pos = walk_path(pb, mnt, dentry, task, &trunc);
                pflags = MT_F_PATH_RESOLVED | (trunc ? MT_F_PATH_TRUNC : 0);
            }
        }
    }
    if (!s.aux && cfg(MT_CFG_OPEN_FILTER)) {
        int m;
        if (!pflags)
            m = prefix_match(open_trie(s.a[2]), (const char *)s.a[1]);
        else if (trunc)
            m = 1; /* cannot tell: report */
        else
            m = kprefix_match(open_trie(s.a[2]), pb->buf + pos);
        if (!pb_mine(pb))
            m = 1; /* the scratch was reused under us: cannot tell, report */
        if (m != 1) {
            count(MT_CNT_FILTERED);
            return 0;
        }
    }
    if ((s.a[2] & MT_O_WRITE_MASK) == 0 && !noisy_gate())
        return 0; /* read-only open */
    e = events.ringbuf_reserve(sizeof(struct mt_event2));
    if (!e) {
        count(MT_CNT_LOST);
        return 0;
    }
    fill_hdr(&e->h, s.type, ret);
    copy_args(&e->h, &s);
    e->h.flags = pflags;
    if (file && (s.a[2] & MT_O_WRITE_MASK))
        open_owners(&e->h, file, dentry);
    e->s[0] = 0;
    if (pflags && pb) {
        bpf_probe_read_kernel_str(e->s, sizeof(e->s), pb->buf + pos);
        if (!pb_mine(pb))
            e->h.flags |= MT_F_PATH_TRUNC;
    }
    bpf_probe_read_user_str(e->s2, sizeof(e->s2), (void *)s.a[1]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    return open_enter(MT_OPEN, (__u64)-100, args->filename, args->flags, args->mode, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_open) { return open_exit(args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    return open_enter(MT_OPENAT, args->dfd, args->filename, args->flags, args->mode, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return open_exit(args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    return open_enter(MT_OPENAT2, args->dfd, args->filename, 0, 0, (__u64)args->how);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return open_exit(args->ret); }

/* ---- writable memory regions per process: W->X at region granularity ----
 *
 * Each process (tgid) has a small table of address intervals it mapped or mprotect'ed
 * writable. A PROT_EXEC mprotect, or a MAP_FIXED PROT_EXEC mmap, that overlaps one of
 * them is W->X, whatever its start address (interior sub-ranges included). Ranges made
 * non-writable, unmapped or replaced are cut out of the table; the table is copied at
 * fork, dropped at exit and re-seeded at exec. Tracking never emits an event.
 * Bounds: MT_WREG_SLOTS intervals per process (adjacent/overlapping ones merge; when
 * full, a file-backed slot, else the oldest, is evicted and the process is marked as
 * overflowed), and an LRU of MT_WREG_PROCS processes. docs/sensor.md discusses the false negatives. */
#define MT_WREG_SLOTS 32
#define MT_WREG_PROCS 8192
#define MT_PAGE_MASK (~4095ULL)
#define MT_MAP_SHARED 0x01
#define MT_MAP_FIXED 0x10


struct mt_wregs {
    __u64 start[MT_WREG_SLOTS];
    __u64 end[MT_WREG_SLOTS];
    __u8 kind[MT_WREG_SLOTS]; /* 0: free slot */
    __u8 prot[MT_WREG_SLOTS];
    __u32 next;               /* eviction cursor */
    __u32 evicted;
    __u32 wx_count;           /* W->X seen in this process so far */
    __u32 pad;
};

BPF_TABLE("lru_hash", __u32, struct mt_wregs, wregions, MT_WREG_PROCS);
BPF_PERCPU_ARRAY(wreg_zero, struct mt_wregs, 1);

static __always_inline __u32 cur_tgid(void)
{
    return bpf_get_current_pid_tgid() >> 32;
}

/* The process's table, created (empty) when create is set. */
static __always_inline struct mt_wregs *wreg_get(__u32 tgid, int create)
{
    struct mt_wregs *w = wregions.lookup(&tgid);
    __u32 zero = 0;

    if (w || !create)
        return w;
    w = wreg_zero.lookup(&zero);
    if (!w)
        return 0;
    wregions.update(&tgid, w); /* the per-CPU template is never written: all zero */
    return wregions.lookup(&tgid);
}

/* Record [start, end) as writable: merge into an overlapping or adjacent slot of the
 * same kind, else a free slot, else evict the slot under the cursor. */
static __always_inline void wreg_add(struct mt_wregs *w, __u64 start, __u64 end, __u8 kind, __u8 prot)
{
    int free_i = -1;

    start &= MT_PAGE_MASK;
    end = (end + 4095) & MT_PAGE_MASK;
    if (end <= start)
        return;
    for (int i = 0; i < MT_WREG_SLOTS; i++) {
        if (!w->kind[i]) {
            if (free_i < 0)
                free_i = i;
            continue;
        }
        if ((w->kind[i] == kind || kind == MT_WK_UNKNOWN) && start <= w->end[i] && end >= w->start[i]) {
            if (start < w->start[i])
                w->start[i] = start;
            if (end > w->end[i])
                w->end[i] = end;
            w->prot[i] = prot;
            return;
        }
    }
    if (free_i < 0) {
        /* full: evict round-robin, file-backed intervals first (a big program's many
         * library data segments), anonymous ones only when no file interval is left.
         * Widening an interval instead would cover the gaps between libraries and turn
         * the loader's MAP_FIXED text mappings into false W->X. */
        int victim = -1;
        for (int k = 0; k < MT_WREG_SLOTS; k++) {
            int i = (w->next + k) % MT_WREG_SLOTS;
            if (i >= 0 && i < MT_WREG_SLOTS && w->kind[i] == MT_WK_FILE) {
                victim = i;
                break;
            }
        }
        if (victim < 0)
            victim = w->next % MT_WREG_SLOTS;
        w->next = victim + 1;
        w->evicted++;
        free_i = victim;
    }
    if (free_i >= 0 && free_i < MT_WREG_SLOTS) {
        w->start[free_i] = start;
        w->end[free_i] = end;
        w->kind[free_i] = kind;
        w->prot[free_i] = prot;
    }
}

struct mt_wreg_hit {
    __u64 start;
    __u64 end;
    __u8 kind;
    __u8 prot;
    __u8 found;
};

/* Cut [start, end) out of the table; the first overlapping region is described in
 * hit (when hit is not null). An interior cut splits a region in two when a slot is
 * free (else the region stays whole: a later X over the cut part may be reported
 * again, never missed). */
static __always_inline void wreg_cut(struct mt_wregs *w, __u64 start, __u64 end, struct mt_wreg_hit *hit)
{
    __u64 split_start = 0, split_end = 0;
    __u8 split_kind = 0, split_prot = 0;

    start &= MT_PAGE_MASK;
    end = (end + 4095) & MT_PAGE_MASK;
    if (end <= start)
        return;
    for (int i = 0; i < MT_WREG_SLOTS; i++) {
        __u64 s = w->start[i], e = w->end[i];

        if (!w->kind[i] || start >= e || end <= s)
            continue;
        if (hit && !hit->found) {
            hit->found = 1;
            hit->start = s;
            hit->end = e;
            hit->kind = w->kind[i];
            hit->prot = w->prot[i];
        }
        if (start <= s && end >= e) {
            w->kind[i] = 0; /* covered: gone */
        } else if (start <= s) {
            w->start[i] = end; /* head cut */
        } else if (end >= e) {
            w->end[i] = start; /* tail cut */
        } else {
            w->end[i] = start; /* interior: keep the head here, the tail in a free slot */
            split_start = end;
            split_end = e;
            split_kind = w->kind[i];
            split_prot = w->prot[i];
        }
    }
    if (!split_kind)
        return;
    for (int i = 0; i < MT_WREG_SLOTS; i++) {
        if (!w->kind[i]) {
            w->start[i] = split_start;
            w->end[i] = split_end;
            w->kind[i] = split_kind;
            w->prot[i] = split_prot;
            return;
        }
    }
    /* no free slot: undo the head cut, keep the region whole */
    for (int i = 0; i < MT_WREG_SLOTS; i++) {
        if (w->kind[i] == split_kind && w->end[i] == start && start > w->start[i]) {
            w->end[i] = split_end;
            return;
        }
    }
}

/* A W->X found: the event's flags, its aux-style previous prot and the count so far. */
static __always_inline __u32 wreg_hit_flags(struct mt_wregs *w, struct mt_wreg_hit *hit)
{
    __u32 flags = 0;

    if (w->evicted)
        flags |= MT_F_WREG_OVERFLOW;
    if (hit->found)
        flags |= MT_F_W_TO_X | MT_F_PREV_KNOWN | ((__u32)hit->kind << MT_F_WREG_SHIFT);
    return flags;
}

/* exec: a new address space. Drop the old table and seed the new image's writable
 * areas the kernel set up without an mmap the sensor saw: the executable's data and
 * bss (up to the brk start, which x86-64 randomises up to 1 GiB above the bss: the gap
 * is unmapped, and a writable, executable or MAP_FIXED mmap placed there cuts it) and
 * the main thread's stack (up to 8 MiB below its top). */
static __always_inline void wreg_exec(void)
{
    __u32 tgid = cur_tgid();
    char *task = (char *)bpf_get_current_task(), *mm = 0;
    __u64 sd = 0, ed = 0, ss = 0, ee = 0, sb = 0;
    struct mt_wregs *w;

    wregions.delete(&tgid);
    bpf_probe_read_kernel(&mm, sizeof(mm), task + OFF_TASK_MM);
    if (!mm)
        return;
    bpf_probe_read_kernel(&sd, sizeof(sd), mm + OFF_MM_START_DATA);
    bpf_probe_read_kernel(&ed, sizeof(ed), mm + OFF_MM_END_DATA);
    bpf_probe_read_kernel(&ss, sizeof(ss), mm + OFF_MM_START_STACK);
    bpf_probe_read_kernel(&ee, sizeof(ee), mm + OFF_MM_ENV_END);
    bpf_probe_read_kernel(&sb, sizeof(sb), mm + OFF_MM_START_BRK);
    if (sb > ed && sb - ed <= (1ULL << 30) + (1ULL << 20))
        ed = sb;
    w = wreg_get(tgid, 1);
    if (!w)
        return;
    if (ed > sd)
        wreg_add(w, sd, ed, MT_WK_DATA, MT_PROT_WRITE | 1);
    if (ss > (8ULL << 20) && ee > ss)
        wreg_add(w, ss - (8ULL << 20), ee, MT_WK_STACK, MT_PROT_WRITE | 1);
}

/* fork: the child starts with a copy of the parent's address space and its table. */
static __always_inline void wreg_fork(__u32 parent, __u32 child)
{
    struct mt_wregs *w = wregions.lookup(&parent);

    if (w)
        wregions.update(&child, w);
}

static __always_inline void wreg_exit(__u32 tgid)
{
    wregions.delete(&tgid);
}

/* mmap succeeded at [ret, ret+len): MAP_FIXED with PROT_EXEC over a writable region is
 * W->X; the old mapping's state goes; a writable mapping is recorded. Returns the
 * event flags (0 when nothing was found); *count gets the process's W->X count. */
static __always_inline __u32 wreg_mmap(struct mt_stash *s, __u64 ret, __u32 *count)
{
    __u64 len = s->a[1], prot = s->a[2], mflags = s->a[3];
    struct mt_wreg_hit hit = {};
    struct mt_wregs *w;
    __u32 flags = 0;

    w = wreg_get(cur_tgid(), (prot & MT_PROT_WRITE) != 0);
    if (!w)
        return 0;
    /* a mapping the kernel placed itself cannot overlap live state: any overlap is stale */
    wreg_cut(w, ret, ret + len, (mflags & MT_MAP_FIXED) && (prot & MT_PROT_EXEC) ? &hit : 0);
    if (hit.found) {
        flags = wreg_hit_flags(w, &hit);
        *count = w->wx_count;
        w->wx_count++;
    }
    if (prot & MT_PROT_WRITE)
        wreg_add(w, ret, ret + len, (mflags & MT_MAP_ANONYMOUS) ? MT_WK_ANON : MT_WK_FILE, (__u8)prot);
    return flags;
}

/* ---- memory protection: mmap / mprotect / munmap / mremap / brk ---- */

TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
    __u64 prot = args->prot;
    /* executable mappings are reported; writable ones and MAP_FIXED replacements
     * only update the region table */
    int interesting = (prot & (MT_PROT_EXEC | MT_PROT_WRITE)) || (args->flags & MT_MAP_FIXED);

    if (is_self())
        return 0;
    if (!interesting && cfg(MT_CFG_MMAP_FILTER)) {
        count(MT_CNT_FILTERED);
        return 0;
    }
    return stash_put(MT_MMAP, args->addr, args->len, prot, args->flags, args->fd, args->off);
}

/* overlayfs: where the file of this inode lives. OVL_I(inode) is the ovl_inode around the
 * vfs inode; __upperdentry is set once the file exists in the upper (writable) layer,
 * created there or copied up by a modification (write, chmod); oe->__numlower counts
 * its lower (image) layers. 0 when not on overlayfs or the fields are not in BTF. */
#define MT_OVERLAYFS_MAGIC 0x794c7630
static __always_inline __u32 ovl_facts(char *inode, __u64 magic)
{
    __u32 f = 0;
#ifdef OFF_OVL_INODE_UPPER
    char *oi, *upper = 0, *oe = 0;
    unsigned int numlower = 0;

    if (magic != MT_OVERLAYFS_MAGIC || !inode)
        return 0;
    oi = inode - OFF_OVL_INODE_VFS_INODE;
    bpf_probe_read_kernel(&upper, sizeof(upper), oi + OFF_OVL_INODE_UPPER);
    bpf_probe_read_kernel(&oe, sizeof(oe), oi + OFF_OVL_INODE_OE);
    if (oe)
        bpf_probe_read_kernel(&numlower, sizeof(numlower), oe + OFF_OVL_ENTRY_NUMLOWER);
    if (upper)
        f |= MT_F_OVL_UPPER;
    if (numlower)
        f |= MT_F_OVL_LOWER;
#endif
    return f;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mmap)
{
    struct mt_stash s;
    struct mt_event *e;
    __s64 ret = args->ret;
    __u64 prot;
    __u32 wflags = 0, wcount = 0, mflags = 0;

    if (!stash_take(&s))
        return 0;
    prot = s.a[2];
    if (!(ret < 0 && ret > -4096))
        wflags = wreg_mmap(&s, (__u64)ret, &wcount);
    if (!(prot & MT_PROT_EXEC) && cfg(MT_CFG_MMAP_FILTER))
        return 0; /* writable or replacing mapping: state recorded, nothing emitted */
    if ((prot & MT_PROT_EXEC) && !(s.a[3] & MT_MAP_ANONYMOUS) && !(ret < 0 && ret > -4096)) {
        /* code mapped from a file: memory-only files (shmem, no link) are always reported */
        char *file = fd_file((char *)bpf_get_current_task(), (__s32)s.a[4]), *inode = 0, *sb = 0;
        __u64 magic = 0;
        __u32 nlink = 1, ovl;
        if (file) {
            bpf_probe_read_kernel(&inode, sizeof(inode), file + OFF_FILE_INODE);
            if (inode) {
                bpf_probe_read_kernel(&nlink, sizeof(nlink), inode + OFF_INODE_NLINK);
                bpf_probe_read_kernel(&sb, sizeof(sb), inode + OFF_INODE_SB);
                if (sb)
                    bpf_probe_read_kernel(&magic, sizeof(magic), sb + OFF_SB_MAGIC);
            }
        }
        if (magic == 0x01021994 || magic == 0x858458f6 || magic == 0x958458f6) /* tmpfs, ramfs, hugetlbfs */
            mflags |= MT_F_MAP_SHMEM;
        if (file && nlink == 0)
            mflags |= MT_F_MAP_NLINK0;
        /* code from a container's writable layer (drift) is always reported too */
        ovl = ovl_facts(inode, magic);
        if (ovl & MT_F_OVL_UPPER)
            mflags |= ovl;
    }
    if (!(prot & MT_PROT_WRITE) && !mflags && !(wflags & MT_F_W_TO_X) && !noisy_gate())
        return 0; /* read-only executable mapping of an ordinary file (library loads) */
    e = reserve_event();
    if (!e)
        return 0;
    fill_hdr(&e->h, MT_MMAP, ret);
    copy_args(&e->h, &s);
    e->h.flags |= mflags;
    if ((prot & MT_PROT_WRITE) && (prot & MT_PROT_EXEC))
        e->h.flags |= MT_F_WX;
    e->h.flags |= wflags & ~MT_F_PREV_KNOWN;
    e->h.aux = wcount; /* W->X events of this process before this one */
    e->s[0] = 0;
    /* a file-backed executable mapping: the mapped file's resolved path */
    if ((prot & MT_PROT_EXEC) && !(s.a[3] & MT_MAP_ANONYMOUS) && !(ret < 0 && ret > -4096)) {
        char *task = (char *)bpf_get_current_task();
        e->h.flags |= file_path(scratch(), task, fd_file(task, (__s32)s.a[4]), e->s);
    }
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* mprotect and pkey_mprotect (the same call with a protection key: pkey -1 is plain
 * mprotect, so it must not be a way around the W->X check). Both report as mprotect. */
static __always_inline int mprotect_enter(__u64 start_arg, __u64 len_arg, __u64 prot_arg)
{
    __u64 start = start_arg, end = start_arg + len_arg;
    __u32 newp = (__u32)prot_arg;
    __u32 flags = 0, prevp = 0;
    struct mt_wreg_hit hit = {};
    struct mt_wregs *w;
    struct mt_stash s = {};
    __u32 tid;

    if (is_self())
        return 0;
    w = wreg_get(cur_tgid(), (newp & MT_PROT_WRITE) != 0);
    if (w) {
        if (newp & MT_PROT_WRITE) {
            /* still writable: a W+X request over a writable region is W->X as well */
            __u8 kind = MT_WK_UNKNOWN;
            if (newp & MT_PROT_EXEC) {
                wreg_cut(w, start, end, &hit);
                if (hit.found)
                    kind = hit.kind;
            }
            wreg_add(w, start, end, kind, (__u8)newp);
        } else {
            wreg_cut(w, start, end, (newp & MT_PROT_EXEC) ? &hit : 0);
        }
        if (hit.found) {
            flags = wreg_hit_flags(w, &hit);
            prevp = hit.prot;
            s.a[3] = hit.start;
            s.a[4] = hit.end - hit.start;
            s.a[5] = w->wx_count;
            w->wx_count++;
        } else if (w->evicted) {
            flags = MT_F_WREG_OVERFLOW;
        }
    }
    if (!(newp & MT_PROT_EXEC) && cfg(MT_CFG_MMAP_FILTER)) {
        count(MT_CNT_FILTERED);
        return 0;
    }
    if ((newp & MT_PROT_WRITE) && (newp & MT_PROT_EXEC))
        flags |= MT_F_WX;
    s.type = MT_MPROTECT;
    s.a[0] = start_arg;
    s.a[1] = len_arg;
    s.a[2] = newp;
    s.aux = prevp;
    s.flags = flags;
    tid = (__u32)bpf_get_current_pid_tgid();
    stash.update(&tid, &s);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_enter_mprotect) { return mprotect_enter(args->start, args->len, args->prot); }
TRACEPOINT_PROBE(syscalls, sys_exit_mprotect) { return emit_exit(args->ret, -1); }
TRACEPOINT_PROBE(syscalls, sys_enter_pkey_mprotect) { return mprotect_enter(args->start, args->len, args->prot); }
TRACEPOINT_PROBE(syscalls, sys_exit_pkey_mprotect) { return emit_exit(args->ret, -1); }

TRACEPOINT_PROBE(syscalls, sys_enter_munmap)
{
    struct mt_wregs *w = wreg_get(cur_tgid(), 0);

    if (w)
        wreg_cut(w, args->addr, args->addr + args->len, 0);
    return 0;
}

/* mremap moves a region: a writable one stays writable at its new address */
#define MT_WREG_MREMAP 0x1000 /* stash type only, never emitted */
TRACEPOINT_PROBE(syscalls, sys_enter_mremap)
{
    struct mt_wregs *w = wreg_get(cur_tgid(), 0);
    struct mt_wreg_hit hit = {};

    if (!w)
        return 0;
    wreg_cut(w, args->addr, args->addr + args->old_len, &hit);
    if (hit.found)
        stash_put(MT_WREG_MREMAP, args->new_len, hit.kind, hit.prot, 0, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_mremap)
{
    struct mt_stash s;
    struct mt_wregs *w;
    __s64 ret = args->ret;

    if (!stash_take(&s) || s.type != MT_WREG_MREMAP || (ret < 0 && ret > -4096))
        return 0;
    w = wreg_get(cur_tgid(), 0);
    if (w)
        wreg_add(w, (__u64)ret, (__u64)ret + s.a[0], (__u8)s.a[1], (__u8)s.a[2]);
    return 0;
}

/* the brk heap is writable anonymous memory the process never mmaps */
TRACEPOINT_PROBE(syscalls, sys_exit_brk)
{
    char *task, *mm = 0;
    __u64 start_brk = 0, brk = args->ret;
    struct mt_wregs *w;

    if (is_self())
        return 0;
    task = (char *)bpf_get_current_task();
    bpf_probe_read_kernel(&mm, sizeof(mm), task + OFF_TASK_MM);
    bpf_probe_read_kernel(&start_brk, sizeof(start_brk), mm + OFF_MM_START_BRK);
    if (!start_brk || brk <= start_brk)
        return 0;
    w = wreg_get(cur_tgid(), 1);
    if (w)
        wreg_add(w, start_brk, brk, MT_WK_HEAP, MT_PROT_WRITE | 1);
    return 0;
}

/* ---- injection, memfd, namespaces, network ---- */

TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    if (is_self())
        return 0;
    return stash_put(MT_MEMFD_CREATE, (__u64)args->uname, args->flags, 0, 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_memfd_create) { return emit_exit(args->ret, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_ptrace)
{
    if (is_self())
        return 0;
    return stash_put(MT_PTRACE, args->request, args->pid, args->addr, args->data, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_ptrace) { return emit_exit(args->ret, -1); }

TRACEPOINT_PROBE(syscalls, sys_enter_process_vm_writev)
{
    if (is_self())
        return 0;
    return stash_put(MT_PROCESS_VM_WRITEV, args->pid, (__u64)args->lvec, args->liovcnt, (__u64)args->rvec,
                     args->riovcnt, args->flags);
}
TRACEPOINT_PROBE(syscalls, sys_exit_process_vm_writev) { return emit_exit(args->ret, -1); }

TRACEPOINT_PROBE(syscalls, sys_enter_process_vm_readv)
{
    if (is_self())
        return 0;
    return stash_put(MT_PROCESS_VM_READV, args->pid, (__u64)args->lvec, args->liovcnt, (__u64)args->rvec,
                     args->riovcnt, args->flags);
}
TRACEPOINT_PROBE(syscalls, sys_exit_process_vm_readv) { return emit_exit(args->ret, -1); }

TRACEPOINT_PROBE(syscalls, sys_enter_unshare)
{
    if (is_self())
        return 0;
    return stash_put(MT_UNSHARE, args->unshare_flags, 0, 0, 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_unshare) { return emit_exit(args->ret, -1); }

/* setns: what the fd really is, resolved in the kernel (fd -> file -> inode -> sb magic).
 * nsfs (/proc/PID/ns/*, bind-mounted ns files): the namespace's own type and inode number
 * (inode->i_private is its ns_common), whatever nstype says (0 = "any type");
 * pidfs (a pidfd, 6.9+): the target process (struct pid -> numbers[0].nr, the pid in the
 * root pid namespace) and the types asked for in nstype.
 * a[2] = CLONE_NEW* types joined, a[3] = fd kind, a[4] = pidfd target, a[5] = ns inode;
 * MT_F_NS_HOST: the joined namespace is one of PID 1's (the loader fills host_ns). */
#define MT_NSFS_MAGIC 0x6e736673
#define MT_PIDFS_MAGIC 0x50494446
BPF_HASH(host_ns, __u32, __u8, 64);

TRACEPOINT_PROBE(syscalls, sys_enter_setns)
{
    char *file, *inode = 0, *sb = 0, *priv = 0;
    __u64 joined = 0, kind = 0, target = 0, inum = 0;
    __u64 fd = (__u32)args->fd, nstype = (__u32)args->flags;
    unsigned long magic = 0;
    struct mt_stash s = {};
    __u32 tid;

    if (is_self())
        return 0;
    file = fd_file((char *)bpf_get_current_task(), fd);
    if (file) {
        kind = MT_FD_OTHER;
        bpf_probe_read_kernel(&inode, sizeof(inode), file + OFF_FILE_INODE);
        if (inode) {
            bpf_probe_read_kernel(&sb, sizeof(sb), inode + OFF_INODE_SB);
            bpf_probe_read_kernel(&priv, sizeof(priv), inode + OFF_INODE_PRIVATE);
        }
        if (sb)
            bpf_probe_read_kernel(&magic, sizeof(magic), sb + OFF_SB_MAGIC);
        if (magic == MT_NSFS_MAGIC && priv) {
            __u32 t = 0, n = 0;
            bpf_probe_read_kernel(&t, sizeof(t), priv + OFF_NS_COMMON_NS_TYPE);
            bpf_probe_read_kernel(&n, sizeof(n), priv + OFF_NS_COMMON_INUM);
            kind = MT_FD_NSFS;
            joined = t;
            inum = n;
            if (host_ns.lookup(&n))
                s.flags |= MT_F_NS_HOST;
        } else if (magic == MT_PIDFS_MAGIC && priv) {
            int nr = 0;
            bpf_probe_read_kernel(&nr, sizeof(nr), priv + OFF_PID_NUMBERS + OFF_UPID_NR);
            kind = MT_FD_PIDFD;
            joined = nstype;
            target = (__u32)nr;
        }
    }
    s.type = MT_SETNS;
    s.a[0] = args->fd;
    s.a[1] = nstype;
    s.a[2] = joined;
    s.a[3] = kind;
    s.a[4] = target;
    s.a[5] = inum;
    tid = (__u32)bpf_get_current_pid_tgid();
    stash.update(&tid, &s);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_setns) { return emit_exit(args->ret, -1); }

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    if (is_self())
        return 0;
    return stash_put(MT_CONNECT, args->fd, (__u64)args->uservaddr, args->addrlen, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    struct mt_stash s;
    struct mt_event *e;
    __u16 family = 0;

    if (!stash_take(&s))
        return 0;
    bpf_probe_read_user(&family, sizeof(family), (void *)s.a[1]);
    if (family != 2 && family != 10 && !cfg(MT_CFG_CONNECT_ALL)) {
        count(MT_CNT_FILTERED);
        return 0;
    }
    if (!noisy_gate())
        return 0;
    e = reserve_event();
    if (!e)
        return 0;
    fill_hdr(&e->h, MT_CONNECT, args->ret);
    copy_args(&e->h, &s);
    /* raw sockaddr (family, port, address): decoded in Python */
    bpf_probe_read_user(e->s, 112, (void *)s.a[1]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* ---- file changes that persistence and fileless attacks leave ---- */

/* unlink/rename/chmod: the file may be gone at exit, so the kernel resolves the
 * directory the typed path is relative to (dirfd, cwd, or the root for an absolute
 * path) and the decoder joins and normalises. The prefix filter decides at exit: on
 * a plain absolute path's text, on base + "/" + typed for a relative one; a path with
 * "..", or an absolute one with "." or "//", is reported. */
static __always_inline int path_enter(__u32 type, const char *path, __u64 a0, __u64 a2, __u64 a3, __u64 a4)
{
    if (is_self())
        return 0;
    return stash_put(type, a0, (__u64)path, a2, a3, a4, 0);
}

/* Does one side (typed path + its resolved base) pass the path filter? */
static __always_inline int side_match(struct mt_pathbuf *pb, const char *typed, const char *base, __u32 pflags)
{
    struct mt_prefix_key *k = &pb->key;
    int shape;

    __builtin_memset(k, 0, sizeof(*k));
    k->prefixlen = MT_PREFIX_LEN * 8;
    if (bpf_probe_read_user_str(k->data, sizeof(k->data), typed) <= 0)
        return 1;
    shape = typed_shape(k->data);
    if ((shape & (MT_SHAPE_ABS | MT_SHAPE_ODD | MT_SHAPE_DOTDOT)) == MT_SHAPE_ABS)
        return trie_lookup(MT_TRIE_PATH, k);
    if ((shape & (MT_SHAPE_ABS | MT_SHAPE_DOTDOT)) || !pflags || (pflags & MT_F_PATH_TRUNC))
        return 1; /* "..", a re-spelled absolute path or no base to judge on: report */
    return joined_match(pb, MT_TRIE_PATH, base, typed);
}

static __always_inline int is_abs(const char *typed)
{
    char c = 0;
    bpf_probe_read_user(&c, 1, typed);
    return c == '/';
}

/* second: rename (a second typed path and base); filter: apply the path filter.
 * Intermediate results go through the event's memory, which the verifier does not
 * track by value: the states of two walks and a filter then merge instead of multiplying. */
static __always_inline int path_exit(__s64 ret, int second, int filter)
{
    struct mt_stash s;
    struct mt_event4 *e;
    struct mt_pathbuf *pb;
    char *task;
    __u32 pflags;

    if (!stash_take(&s))
        return 0;
    e = events.ringbuf_reserve(sizeof(struct mt_event4));
    if (!e) {
        count(MT_CNT_LOST);
        return 0;
    }
    pb = scratch();
    task = (char *)bpf_get_current_task();
    e->h.flags = base_path(pb, task, (__s32)s.a[0], is_abs((const char *)s.a[1]), e->base);
    e->h.aux = 1; /* reported unless the filter says otherwise */
    if (filter && pb && !second)
        e->h.aux = side_match(pb, (const char *)s.a[1], e->base, e->h.flags) == 1 || !pb_mine(pb);
    else if (filter) /* rename: the text check (a relative path is reported) */
        e->h.aux = !is_abs((const char *)s.a[1]) || prefix_match(MT_TRIE_PATH, (const char *)s.a[1]) != 0;
    e->base2[0] = 0;
    e->s2[0] = 0;
    if (second) {
        __u32 t = base_path(pb, task, (__s32)s.a[2], is_abs((const char *)s.a[3]), e->base2);
        e->h.flags |= (t & MT_F_PATH_RESOLVED ? MT_F_PATH2_RESOLVED : 0) | (t & MT_F_PATH_TRUNC ? MT_F_PATH2_TRUNC : 0);
        bpf_probe_read_user_str(e->s2, sizeof(e->s2), (void *)s.a[3]);
        /* joined checks on both sides of a rename make the program too complex for
         * the verifier: rename gets the text check, a relative side is reported */
        if (filter && (!is_abs((const char *)s.a[3]) || prefix_match(MT_TRIE_PATH, (const char *)s.a[3]) != 0))
            e->h.aux = 1;
    }
    if (!e->h.aux) {
        events.ringbuf_discard(e, BPF_RB_NO_WAKEUP);
        count(MT_CNT_FILTERED);
        return 0;
    }
    pflags = e->h.flags;
    fill_hdr(&e->h, s.type, ret);
    copy_args(&e->h, &s);
    e->h.flags = pflags;
    bpf_probe_read_user_str(e->s, sizeof(e->s), (void *)s.a[1]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat)
{
    return path_enter(MT_UNLINK, args->pathname, args->dfd, args->flag, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat) { return path_exit(args->ret, 0, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_unlink) { return path_enter(MT_UNLINK, args->pathname, (__u64)-100, 0, 0, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_unlink) { return path_exit(args->ret, 0, 1); }

TRACEPOINT_PROBE(syscalls, sys_enter_renameat2)
{
    if (is_self())
        return 0;
    return stash_put(MT_RENAME, args->olddfd, (__u64)args->oldname, args->newdfd, (__u64)args->newname,
                     args->flags, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_renameat2) { return path_exit(args->ret, 1, 1); }
TRACEPOINT_PROBE(syscalls, sys_enter_rename)
{
    if (is_self())
        return 0;
    return stash_put(MT_RENAME, (__u64)-100, (__u64)args->oldname, (__u64)-100, (__u64)args->newname, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_rename) { return path_exit(args->ret, 1, 1); }

static __always_inline int chmod_enter(__u64 dfd, const char *path, __u64 mode)
{
    if (is_self())
        return 0;
    if (!(mode & MT_MODE_EXEC_BITS)) {
        count(MT_CNT_FILTERED);
        return 0;
    }
    return stash_put(MT_CHMOD, dfd, (__u64)path, mode, 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_enter_fchmodat) { return chmod_enter(args->dfd, args->filename, args->mode); }
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat) { return path_exit(args->ret, 0, 0); }
TRACEPOINT_PROBE(syscalls, sys_enter_chmod) { return chmod_enter((__u64)-100, args->filename, args->mode); }
TRACEPOINT_PROBE(syscalls, sys_exit_chmod) { return path_exit(args->ret, 0, 0); }

TRACEPOINT_PROBE(syscalls, sys_enter_mount)
{
    if (is_self())
        return 0;
    return stash_put(MT_MOUNT, (__u64)args->type, (__u64)args->dev_name, args->flags, (__u64)args->dir_name, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_mount)
{
    struct mt_stash s;
    struct mt_event2 *e;

    if (!stash_take(&s))
        return 0;
    e = events.ringbuf_reserve(sizeof(struct mt_event2));
    if (!e) {
        count(MT_CNT_LOST);
        return 0;
    }
    fill_hdr(&e->h, MT_MOUNT, args->ret);
    copy_args(&e->h, &s);
    bpf_probe_read_user_str(e->s, sizeof(e->s), (void *)s.a[1]);
    bpf_probe_read_user_str(e->s2, sizeof(e->s2), (void *)s.a[3]);
    /* the fs type fits in a[4..5] (16 bytes) */
    bpf_probe_read_user_str(&e->h.a[4], 16, (void *)s.a[0]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* ---- the new mount API: fsopen/fsconfig/fsmount/open_tree + move_mount ----
 * A mount made this way never calls mount(2). Per process, the last fsopen's fs type and
 * fsconfig "source", or the last open_tree(OPEN_TREE_CLONE) path (a bind mount), are kept;
 * move_mount, which attaches the mount, is reported as a mount event with them
 * (hdr.flags MT_F_MOUNT_API). */
#define MT_STASH_FSOPEN 0x1001
#define MT_STASH_FSCONFIG 0x1002
#define MT_STASH_OPEN_TREE 0x1003
#define MT_OPEN_TREE_CLONE 1
#define MT_AT_RECURSIVE 0x8000
#define MT_FSCONFIG_SET_STRING 1
#define MT_MS_BIND 4096
#define MT_MS_REC 16384

struct mt_mntctx {
    char fstype[16];
    char source[MT_PATH_LEN];
    __u64 msflags;
};
BPF_TABLE("lru_hash", __u32, struct mt_mntctx, mount_ctx, 4096);
BPF_PERCPU_ARRAY(mntctx_zero, struct mt_mntctx, 1);

static __always_inline struct mt_mntctx *mntctx_new(void)
{
    __u32 tgid = cur_tgid(), zero = 0;
    struct mt_mntctx *z = mntctx_zero.lookup(&zero);

    if (!z)
        return 0;
    mount_ctx.update(&tgid, z);
    return mount_ctx.lookup(&tgid);
}

TRACEPOINT_PROBE(syscalls, sys_enter_fsopen)
{
    if (is_self())
        return 0;
    return stash_put(MT_STASH_FSOPEN, (__u64)args->_fs_name, 0, 0, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fsopen)
{
    struct mt_stash st;
    struct mt_mntctx *c;

    if (!stash_take(&st) || st.type != MT_STASH_FSOPEN || args->ret < 0)
        return 0;
    c = mntctx_new();
    if (c)
        bpf_probe_read_user_str(c->fstype, sizeof(c->fstype), (void *)st.a[0]);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_fsconfig)
{
    if (is_self() || args->cmd != MT_FSCONFIG_SET_STRING)
        return 0;
    return stash_put(MT_STASH_FSCONFIG, (__u64)args->_key, (__u64)args->_value, 0, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_fsconfig)
{
    struct mt_stash st;
    struct mt_mntctx *c;
    char key[8] = {};
    __u32 tgid = cur_tgid();

    if (!stash_take(&st) || st.type != MT_STASH_FSCONFIG || args->ret < 0)
        return 0;
    bpf_probe_read_user_str(key, sizeof(key), (void *)st.a[0]);
    if (key[0] != 's' || key[1] != 'o' || key[2] != 'u' || key[3] != 'r' || key[4] != 'c' || key[5] != 'e' ||
        key[6] != 0)
        return 0;
    c = mount_ctx.lookup(&tgid);
    if (c)
        bpf_probe_read_user_str(c->source, sizeof(c->source), (void *)st.a[1]);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_open_tree)
{
    if (is_self() || !(args->flags & MT_OPEN_TREE_CLONE))
        return 0;
    return stash_put(MT_STASH_OPEN_TREE, (__u64)args->filename, args->flags, 0, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_open_tree)
{
    struct mt_stash st;
    struct mt_mntctx *c;

    if (!stash_take(&st) || st.type != MT_STASH_OPEN_TREE || args->ret < 0)
        return 0;
    c = mntctx_new();
    if (!c)
        return 0;
    c->fstype[0] = 'b';
    c->fstype[1] = 'i';
    c->fstype[2] = 'n';
    c->fstype[3] = 'd';
    c->fstype[4] = 0;
    bpf_probe_read_user_str(c->source, sizeof(c->source), (void *)st.a[0]);
    c->msflags = MT_MS_BIND | ((st.a[1] & MT_AT_RECURSIVE) ? MT_MS_REC : 0);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_move_mount)
{
    if (is_self())
        return 0;
    return stash_put(MT_MOUNT, args->from_dfd, (__u64)args->from_pathname, args->flags,
                     (__u64)args->to_pathname, args->to_dfd, 0);
}

TRACEPOINT_PROBE(syscalls, sys_exit_move_mount)
{
    struct mt_stash st;
    struct mt_event2 *e;
    struct mt_mntctx *c;
    __u32 tgid = cur_tgid();

    if (!stash_take(&st) || st.type != MT_MOUNT)
        return 0;
    e = events.ringbuf_reserve(sizeof(struct mt_event2));
    if (!e) {
        count(MT_CNT_LOST);
        return 0;
    }
    fill_hdr(&e->h, MT_MOUNT, args->ret);
    e->h.flags = MT_F_MOUNT_API;
    e->h.a[0] = st.a[0];
    e->h.a[1] = st.a[1];
    e->h.a[2] = 0;
    e->h.a[3] = st.a[3];
    e->h.a[4] = 0;
    e->h.a[5] = 0;
    e->s[0] = 0;
    e->s2[0] = 0;
    c = mount_ctx.lookup(&tgid);
    if (c) {
        bpf_probe_read_kernel_str(e->s, sizeof(e->s), c->source);
        bpf_probe_read_kernel_str(&e->h.a[4], 16, c->fstype);
        e->h.a[2] = c->msflags;
    }
    if (!e->s[0])
        bpf_probe_read_user_str(e->s, sizeof(e->s), (void *)st.a[1]);
    bpf_probe_read_user_str(e->s2, sizeof(e->s2), (void *)st.a[3]);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* ---- exec: facts from the new image at sched_process_exec ---- */

static __always_inline int is_prefix(const char *buf, const char *lit, int n)
{
#pragma unroll
    for (int i = 0; i < 16; i++) {
        if (i >= n)
            break;
        if (buf[i] != lit[i])
            return 0;
    }
    return 1;
}

static __always_inline void env_clear(struct mt_exec *e)
{
    e->ld_preload[0] = 0;
    e->ld_library_path[0] = 0;
    e->ld_audit[0] = 0;
    e->glibc_tunables[0] = 0;
#pragma unroll
    for (int k = 0; k < MT_ENV_VARS; k++)
        e->env_vlen[k] = 0;
    e->env_size = 0;
    e->env_scanned = 0;
    e->env_count = 0;
    e->env_pad = 0;
}

#define MT_U32(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)

/* AT_BASE of the new image's auxiliary vector (mm->saved_auxv, built by the kernel's ELF
 * loader): the ELF interpreter's load address, 0 when the executed file has none — a
 * static program, or the dynamic loader itself run as a program ("ld.so PROG"). Returns
 * 1 when unknown (read failure) so that nothing is claimed. */
#define MT_AT_NULL 0
#define MT_AT_BASE 7
#define MT_AUXV_PAIRS 24
static __always_inline int at_base(char *mm)
{
    __u32 zero = 0;
    struct mt_envbuf *eb = envbuf.lookup(&zero);
    __u64 *v;

    if (!eb || !mm)
        return 1;
    if (bpf_probe_read_kernel(eb->buf, MT_AUXV_PAIRS * 16, mm + OFF_MM_SAVED_AUXV))
        return 1;
    v = (__u64 *)eb->buf;
#pragma unroll
    for (int i = 0; i < MT_AUXV_PAIRS; i++) {
        if (v[2 * i] == MT_AT_BASE)
            return v[2 * i + 1] != 0;
        if (v[2 * i] == MT_AT_NULL)
            break;
    }
    return 1;
}

/* The loader's variables in the new environment (mm->env_start..env_end, the strings
 * the kernel just copied onto the new stack): LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT,
 * GLIBC_TUNABLES, wherever they are. Bounded by bytes (MT_ENV_SCAN_BYTES) and by strings
 * (MT_ENV_MAX_STRINGS: a plain loop, bcc cannot relocate a bpf_loop callback); a scan that
 * stops before env_end sets MT_F_ENV_TRUNC. Each iteration reads one string (or the next
 * 4 KiB of a longer one) with one helper call; only a string starting "LD_" or "GLIB" is
 * compared further. The last occurrence of a name wins, as in ld.so. */
static __always_inline void env_scan(struct mt_exec *e, __u64 start, __u64 end)
{
    __u32 zero = 0, cont = 0, count = 0;
    struct mt_envbuf *eb = envbuf.lookup(&zero);
    __u64 p = start;

    env_clear(e);
    if (end > start)
        e->env_size = (__u32)(end - start);
    if (!eb)
        return;
    for (int i = 0; i < MT_ENV_MAX_STRINGS; i++) {
        long n;
        __u32 head, k, off, got;
        if (p >= end || p - start >= MT_ENV_SCAN_BYTES)
            break;
        n = bpf_probe_read_user_str(eb->buf, sizeof(eb->buf), (void *)p);
        if (n <= 0)
            break;
        /* a full buffer: the string goes on (the last byte copied is our NUL) */
        got = n >= MT_ENVSCAN_LEN ? MT_ENVSCAN_LEN - 1 : (__u32)n - 1;
        p += n >= MT_ENVSCAN_LEN ? MT_ENVSCAN_LEN - 1 : n;
        if (cont) { /* the next piece of a string longer than the buffer */
            k = cont - 1;
            if (k < MT_ENV_VARS)
                e->env_vlen[k] += got;
            if (n < MT_ENVSCAN_LEN)
                cont = 0;
            continue;
        }
        count++;
        head = *(__u32 *)eb->buf;
        if (head == MT_U32('L', 'D', '_', 'P') && is_prefix(eb->buf, "LD_PRELOAD=", 11)) {
            k = MT_ENV_PRELOAD;
            off = 11;
            bpf_probe_read_kernel_str(e->ld_preload, sizeof(e->ld_preload), eb->buf + 11);
        } else if (head == MT_U32('L', 'D', '_', 'L') && is_prefix(eb->buf, "LD_LIBRARY_PATH=", 16)) {
            k = MT_ENV_LIBRARY_PATH;
            off = 16;
            bpf_probe_read_kernel_str(e->ld_library_path, sizeof(e->ld_library_path), eb->buf + 16);
        } else if (head == MT_U32('L', 'D', '_', 'A') && is_prefix(eb->buf, "LD_AUDIT=", 9)) {
            k = MT_ENV_AUDIT;
            off = 9;
            bpf_probe_read_kernel_str(e->ld_audit, sizeof(e->ld_audit), eb->buf + 9);
        } else if (head == MT_U32('G', 'L', 'I', 'B') && is_prefix(eb->buf, "GLIBC_TUNABLES=", 15)) {
            k = MT_ENV_TUNABLES;
            off = 15;
            bpf_probe_read_kernel_str(e->glibc_tunables, sizeof(e->glibc_tunables), eb->buf + 15);
        } else {
            if (head == MT_U32('L', 'D', '_', 'T') && is_prefix(eb->buf, "LD_TRACE_LOADED_OBJECTS=", 24))
                e->h.flags |= MT_F_ENV_LDTRACE;
            if (n >= MT_ENVSCAN_LEN)
                cont = MT_ENV_VARS + 1; /* skip the rest of an uninteresting long string */
            continue;
        }
        /* "NAME=" alone has an empty value: length 0 still means present */
        e->env_vlen[k] = got > off ? got - off : 0;
        e->env_vlen[k] |= MT_ENV_PRESENT;
        if (n >= MT_ENVSCAN_LEN)
            cont = k + 1;
    }
    e->env_count = count;
    e->env_scanned = (__u32)(p - start);
    if (p < end)
        e->h.flags |= MT_F_ENV_TRUNC;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    if (is_self())
        return 0;
    return stash_put(MT_EXECVE, (__u64)args->filename, (__u64)-100, 0, 0, 0, 0);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    if (is_self())
        return 0;
    return stash_put(MT_EXECVEAT, (__u64)args->filename, args->fd, args->flags, 0, 0, 0);
}

/* Only failed execs reach here with a stash entry: a successful one was reported
 * (and its entry removed) at sched_process_exec. */
static __always_inline int exec_exit(__s64 ret)
{
    struct mt_stash s;
    struct mt_exec *e;

    if (!stash_take(&s) || ret >= 0)
        return 0;
    e = events.ringbuf_reserve(sizeof(struct mt_exec));
    if (!e) {
        count(MT_CNT_LOST);
        return 0;
    }
    fill_hdr(&e->h, s.type, ret);
    copy_args(&e->h, &s);
    bpf_probe_read_user_str(e->filename, sizeof(e->filename), (void *)s.a[0]);
    e->argv[0] = 0;
    e->ld_preload[0] = 0;
    e->ld_library_path[0] = 0;
    e->exe_name[0] = 0;
    e->cgroup_leaf[0] = 0;
    e->cgroup_parent[0] = 0;
    for (int i = 0; i < 4; i++) {
        e->fd_rdev[i] = 0;
        e->fd_family[i] = 0;
        e->fd_type[i] = 0;
        e->fd_open[i] = 0;
        e->fd_ino[i] = 0;
    }
    e->exe_path[0] = 0;
    e->exe_ino = 0;
    e->exe_magic = 0;
    e->exe_dev = 0;
    e->exe_uid = 0;
    e->exe_nlink = 0;
    e->exe_mode = 0;
    e->exe_pad = 0;
    env_clear(e);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_execve) { return exec_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_exit_execveat) { return exec_exit(args->ret); }

/* fds 0..2 of the new image (close-on-exec fds are already closed here): the file
 * type, for sockets the address family, for char devices the device number.
 * A shell whose stdin is a TCP socket is a reverse or bind shell. */
#define MT_S_IFMT   0170000
#define MT_S_IFSOCK 0140000
#define MT_S_IFCHR  0020000
static __always_inline void stdio_facts(char *task, struct mt_exec *e)
{
    char *files = 0, *fdt = 0, *fdarr = 0;
    unsigned int max_fds = 0;

    bpf_probe_read_kernel(&files, sizeof(files), task + OFF_TASK_FILES);
    if (files)
        bpf_probe_read_kernel(&fdt, sizeof(fdt), files + OFF_FILES_FDT);
    if (fdt) {
        bpf_probe_read_kernel(&max_fds, sizeof(max_fds), fdt + OFF_FDT_MAX_FDS);
        bpf_probe_read_kernel(&fdarr, sizeof(fdarr), fdt + OFF_FDT_FD);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        char *file = 0, *inode = 0, *sk = 0;
        __u16 mode = 0, family = 0;
        __u32 rdev = 0;

        e->fd_rdev[i] = 0;
        e->fd_family[i] = 0;
        e->fd_type[i] = 0;
        e->fd_open[i] = 0;
        e->fd_ino[i] = 0;
        if (i >= MT_STDIO_FDS || !fdarr || i >= max_fds)
            continue;
        bpf_probe_read_kernel(&file, sizeof(file), fdarr + i * sizeof(void *));
        if (!file)
            continue;
        e->fd_open[i] = 1;
        bpf_probe_read_kernel(&inode, sizeof(inode), file + OFF_FILE_INODE);
        if (!inode)
            continue;
        bpf_probe_read_kernel(&mode, sizeof(mode), inode + OFF_INODE_MODE);
        bpf_probe_read_kernel(&e->fd_ino[i], sizeof(e->fd_ino[i]), inode + OFF_INODE_INO);
        e->fd_type[i] = (mode & MT_S_IFMT) >> 12;
        if ((mode & MT_S_IFMT) == MT_S_IFSOCK) {
            /* SOCKET_I(inode): struct socket_alloc { struct socket socket; struct inode vfs_inode; } */
            char *sock = inode - OFF_SOCKET_ALLOC_INODE + OFF_SOCKET_ALLOC_SOCKET;
            bpf_probe_read_kernel(&sk, sizeof(sk), sock + OFF_SOCKET_SK);
            if (sk) {
                bpf_probe_read_kernel(&family, sizeof(family), sk + OFF_SK_FAMILY);
                e->fd_family[i] = family;
            }
        } else if ((mode & MT_S_IFMT) == MT_S_IFCHR) {
            bpf_probe_read_kernel(&rdev, sizeof(rdev), inode + OFF_INODE_RDEV);
            e->fd_rdev[i] = rdev;
        }
    }
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    __u32 old = args->old_pid;
    struct mt_stash *st = stash.lookup(&old);
    struct mt_exec *e;
    char *task, *mm = 0, *exe = 0, *dentry = 0, *inode = 0, *name = 0;
    __u64 arg_start = 0, arg_end = 0, env_start = 0, env_end = 0, len;
    __u32 nlink = 1;
    unsigned short loc = args->data_loc_filename & 0xFFFF;

    if (is_self())
        return 0;
    wreg_exec();
    e = events.ringbuf_reserve(sizeof(struct mt_exec));
    if (!e) {
        count(MT_CNT_LOST);
        if (st)
            stash.delete(&old);
        return 0;
    }
    fill_hdr(&e->h, st ? st->type : MT_EXECVE, 0);
    e->h.a[0] = 0;
    e->h.a[1] = st ? st->a[1] : (__u64)-100;
    e->h.a[2] = st ? st->a[2] : 0;
    e->h.a[3] = 0;
    e->h.a[4] = args->pid;
    e->h.a[5] = old;
    if (st)
        stash.delete(&old);
    bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (char *)args + loc);

    task = (char *)bpf_get_current_task();
    bpf_probe_read_kernel(&mm, sizeof(mm), task + OFF_TASK_MM);
    bpf_probe_read_kernel(&arg_start, sizeof(arg_start), mm + OFF_MM_ARG_START);
    bpf_probe_read_kernel(&arg_end, sizeof(arg_end), mm + OFF_MM_ARG_END);
    bpf_probe_read_kernel(&env_start, sizeof(env_start), mm + OFF_MM_ENV_START);
    bpf_probe_read_kernel(&env_end, sizeof(env_end), mm + OFF_MM_ENV_END);

    len = arg_end - arg_start;
    if (len >= MT_ARGV_LEN) {
        len = MT_ARGV_LEN - 1;
        e->h.flags |= MT_F_ARGV_TRUNC;
    }
    len &= (MT_ARGV_LEN - 1);
    e->argv[0] = 0;
    if (len > 0 && bpf_probe_read_user(e->argv, len, (void *)arg_start) == 0)
        e->h.aux = len;

    /* exe_file: memfd ("memfd:<name>") and link count (0 = deleted or memfd) */
    e->exe_name[0] = 0;
    e->exe_ino = 0;
    e->exe_magic = 0;
    e->exe_dev = 0;
    e->exe_uid = 0;
    e->exe_mode = 0;
    e->exe_pad = 0;
    bpf_probe_read_kernel(&exe, sizeof(exe), mm + OFF_MM_EXE_FILE);
    if (exe) {
        bpf_probe_read_kernel(&dentry, sizeof(dentry), exe + OFF_FILE_DENTRY);
        bpf_probe_read_kernel(&name, sizeof(name), dentry + OFF_DENTRY_NAME);
        bpf_probe_read_kernel_str(e->exe_name, sizeof(e->exe_name), name);
        bpf_probe_read_kernel(&inode, sizeof(inode), exe + OFF_FILE_INODE);
        bpf_probe_read_kernel(&nlink, sizeof(nlink), inode + OFF_INODE_NLINK);
        if (is_prefix(e->exe_name, "memfd:", 6))
            e->h.flags |= MT_F_EXE_MEMFD;
        if (nlink == 0)
            e->h.flags |= MT_F_EXE_DELETED;
        if (inode) { /* file facts: what the kernel knows about the executed file */
            char *sb = 0;
            __u16 imode = 0;
            bpf_probe_read_kernel(&e->exe_ino, sizeof(e->exe_ino), inode + OFF_INODE_INO);
            bpf_probe_read_kernel(&e->exe_uid, sizeof(e->exe_uid), inode + OFF_INODE_UID);
            bpf_probe_read_kernel(&imode, sizeof(imode), inode + OFF_INODE_MODE);
            e->exe_mode = imode;
            bpf_probe_read_kernel(&sb, sizeof(sb), inode + OFF_INODE_SB);
            if (sb) {
                bpf_probe_read_kernel(&e->exe_magic, sizeof(e->exe_magic), sb + OFF_SB_MAGIC);
                bpf_probe_read_kernel(&e->exe_dev, sizeof(e->exe_dev), sb + OFF_SB_DEV);
            }
            e->h.flags |= ovl_facts(inode, e->exe_magic);
        }
    }
    e->exe_nlink = exe ? nlink : 0;
    stdio_facts(task, e);

    /* cgroup2 directory names: container attribution even when the container is
     * gone before userspace resolves its cgroup id */
    {
        char *cset = 0, *cgrp = 0, *kn = 0, *kname = 0, *kparent = 0;
        e->cgroup_leaf[0] = 0;
        e->cgroup_parent[0] = 0;
        bpf_probe_read_kernel(&cset, sizeof(cset), task + OFF_TASK_CGROUPS);
        bpf_probe_read_kernel(&cgrp, sizeof(cgrp), cset + OFF_CSS_SET_DFL_CGRP);
        bpf_probe_read_kernel(&kn, sizeof(kn), cgrp + OFF_CGROUP_KN);
        bpf_probe_read_kernel(&kname, sizeof(kname), kn + OFF_KERNFS_NAME);
        bpf_probe_read_kernel_str(e->cgroup_leaf, sizeof(e->cgroup_leaf), kname);
        bpf_probe_read_kernel(&kparent, sizeof(kparent), kn + OFF_KERNFS_PARENT);
        if (kparent) {
            bpf_probe_read_kernel(&kname, sizeof(kname), kparent + OFF_KERNFS_NAME);
            bpf_probe_read_kernel_str(e->cgroup_parent, sizeof(e->cgroup_parent), kname);
        }
    }

    if (!at_base(mm))
        e->h.flags |= MT_F_EXE_NO_INTERP;
    env_scan(e, env_start, env_end);
    /* the file the kernel executed, resolved (for "ld.so PROG" that is the loader) */
    e->h.flags |= file_path(scratch(), task, exe, e->exe_path);
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

/* ---- lifecycle for the process cache ---- */

/* clone flags of the call in progress, so sched_process_fork can skip new threads
 * (CLONE_THREAD): lineage needs processes, and threads are a busy node's bulk. */
#define MT_CLONE_THREAD 0x00010000ULL

TRACEPOINT_PROBE(syscalls, sys_enter_clone)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 flags = args->clone_flags;

    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clone)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();

    clone_flags.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone3)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 flags = 0; /* struct clone_args starts with u64 flags */

    bpf_probe_read_user(&flags, sizeof(flags), args->uargs);
    clone_flags.update(&tid, &flags);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clone3)
{
    __u32 tid = (__u32)bpf_get_current_pid_tgid();

    clone_flags.delete(&tid);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    struct mt_event *e;
    __u32 tid = (__u32)bpf_get_current_pid_tgid();
    __u64 *cf = clone_flags.lookup(&tid);

    if (cf && (*cf & MT_CLONE_THREAD))
        return 0; /* a new thread, not a process */
    wreg_fork(bpf_get_current_pid_tgid() >> 32, args->child_pid);
    if (is_self())
        return 0;
    e = reserve_event();
    if (!e)
        return 0;
    fill_hdr(&e->h, MT_FORK, 0);
    e->h.a[0] = args->child_pid;
    e->h.a[1] = args->parent_pid;
    e->h.a[2] = 0;
    e->h.a[3] = 0;
    e->h.a[4] = 0;
    e->h.a[5] = 0;
    e->s[0] = 0;
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    struct mt_event *e;
    __u64 pt = bpf_get_current_pid_tgid();
    char *task;
    int code = 0;

    if ((__u32)pt != (pt >> 32) || is_self())
        return 0; /* a thread, not the process */
    wreg_exit(pt >> 32);
    e = reserve_event();
    if (!e)
        return 0;
    task = (char *)bpf_get_current_task();
    bpf_probe_read_kernel(&code, sizeof(code), task + OFF_TASK_EXIT_CODE);
    fill_hdr(&e->h, MT_EXIT, 0);
    e->h.a[0] = (__u32)code;
    e->h.a[1] = 0;
    e->h.a[2] = 0;
    e->h.a[3] = 0;
    e->h.a[4] = 0;
    e->h.a[5] = 0;
    e->s[0] = 0;
    events.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
    return 0;
}
