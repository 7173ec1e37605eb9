/*
 * faultline vDSO clock patch: the code that `nemeses::vdso_clock` loads into a running process
 * (x86_64 Linux) and jumps to from the entry points of the process's vDSO clock functions.
 *
 * Why: a Go program (etcd, NATS) or a statically linked one reads the clock by calling the
 * kernel's vDSO directly, so no LD_PRELOAD library (clockshim.c) can see it. The controller
 * instead stops the process with ptrace, maps this image into it, and overwrites the first
 * bytes of `__vdso_clock_gettime`, `__vdso_gettimeofday` and `__vdso_time` with an absolute
 * jump to the functions below. Every thread of the process, and every thread it creates later,
 * then reads the clock through this code.
 *
 * Constraints, since this code runs inside a process that never asked for it:
 * - no libc, no relocations (the image is copied as it is, not linked: every reference is
 *   RIP-relative), no stack protector, general-purpose registers only (callers such as Go's
 *   runtime call the vDSO with a small stack and make no promise about SSE alignment);
 * - the original vDSO code cannot be called (its entry is overwritten and it addresses the
 *   kernel's data page relative to its own position), so the real time is read by system call.
 *   That costs a kernel entry per clock read while a fault is in force; the bench
 *   `vdso_clock` measures it. Once the fault is healed the vDSO entry is restored.
 *
 * Control: `fl_vdso_data` (below) lives on its own writable page. The controller writes it with
 * process_vm_writev while the process runs: it fills the inactive slot, then flips `active`
 * (only its lowest byte changes, so the flip is a single-byte store and cannot be seen torn),
 * then raises `gen`. A process that returns a time through this code under a new `gen` copies
 * it to `ack`, so the controller can tell that the process really reads its clock here.
 * With a strobe period P > 0 the offset is O + A during every odd P-long slice of the
 * monotonic clock and O otherwise (as in clockshim.c).
 *
 * Only CLOCK_REALTIME and its variants are shifted; monotonic, boot-time and CPU clocks pass
 * through untouched, so timeouts and durations inside the process stay real.
 */

#if !defined(__x86_64__)
#error "vdsopatch: x86_64 only"
#endif

typedef unsigned long u64;
typedef long i64;
typedef int i32;
typedef unsigned char u8;

#define NR_gettimeofday 96
#define NR_clock_gettime 228

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_REALTIME_ALARM 8
#define CLOCK_TAI 11

#define NS_PER_S 1000000000L

struct kts {
    i64 tv_sec;
    i64 tv_nsec;
};
struct ktv {
    i64 tv_sec;
    i64 tv_usec;
};

struct slot {
    i64 offset_ns;
    i64 amplitude_ns;
    i64 period_ns;
};

/* Where the controller keeps the original bytes of a patched vDSO entry (it alone reads them). */
struct saved_entry {
    u64 addr;
    u8 bytes[16];
};

/* Layout shared with nemeses/src/vdso_clock.rs (`DATA_*` offsets); 192 bytes. */
struct data {
    char magic[8];      /* 0: "FLVDSO01" */
    u64 gen;            /* 8 */
    u64 ack;            /* 16 */
    u64 active;         /* 24: 0 or 1, the slot in force */
    struct slot slot[2];/* 32 */
    u64 saved_count;    /* 80 */
    u64 reserved;       /* 88 */
    struct saved_entry saved[4]; /* 96 */
};

/* Referenced by the code under this hidden name (RIP-relative, no GOT), exported under the
 * alias below so the controller finds it in the dynamic symbol table. */
__attribute__((visibility("hidden"), aligned(64))) volatile struct data fl_data = {
    .magic = {'F', 'L', 'V', 'D', 'S', 'O', '0', '1'},
};
extern volatile struct data fl_vdso_data
    __attribute__((alias("fl_data"), visibility("default")));

static inline i64 sys2(i64 n, i64 a, i64 b) {
    i64 ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b) : "rcx", "r11", "memory");
    return ret;
}

static inline int is_realtime(i32 clk) {
    return clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE || clk == CLOCK_REALTIME_ALARM ||
           clk == CLOCK_TAI;
}

static inline i64 offset_now(void) {
    u64 i = fl_data.active & 1;
    i64 off = fl_data.slot[i].offset_ns;
    i64 amp = fl_data.slot[i].amplitude_ns;
    i64 per = fl_data.slot[i].period_ns;
    if (per > 0 && amp != 0) {
        struct kts mono;
        if (sys2(NR_clock_gettime, CLOCK_MONOTONIC, (i64)&mono) == 0) {
            i64 mono_ns = mono.tv_sec * NS_PER_S + mono.tv_nsec;
            if ((mono_ns / per) & 1)
                off += amp;
        }
    }
    u64 gen = fl_data.gen;
    if (fl_data.ack != gen)
        fl_data.ack = gen;
    return off;
}

static inline void shift_ts(struct kts *ts, i64 off) {
    i64 ns = ts->tv_nsec + off % NS_PER_S;
    i64 s = ts->tv_sec + off / NS_PER_S;
    if (ns < 0) {
        ns += NS_PER_S;
        s -= 1;
    } else if (ns >= NS_PER_S) {
        ns -= NS_PER_S;
        s += 1;
    }
    ts->tv_sec = s;
    ts->tv_nsec = ns;
}

/* vDSO functions return what the system call would: 0 or a negative errno. */
__attribute__((visibility("default"))) int fl_clock_gettime(i32 clk, struct kts *ts) {
    i64 r = sys2(NR_clock_gettime, clk, (i64)ts);
    if (r == 0 && is_realtime(clk)) {
        i64 off = offset_now();
        if (off)
            shift_ts(ts, off);
    }
    return (int)r;
}

__attribute__((visibility("default"))) int fl_gettimeofday(struct ktv *tv, void *tz) {
    i64 r = sys2(NR_gettimeofday, (i64)tv, (i64)tz);
    if (r == 0 && tv) {
        i64 off = offset_now();
        if (off) {
            struct kts ts = {tv->tv_sec, tv->tv_usec * 1000};
            shift_ts(&ts, off);
            tv->tv_sec = ts.tv_sec;
            tv->tv_usec = ts.tv_nsec / 1000;
        }
    }
    return (int)r;
}

__attribute__((visibility("default"))) i64 fl_time(i64 *out) {
    struct kts ts;
    i64 r = sys2(NR_clock_gettime, CLOCK_REALTIME, (i64)&ts);
    if (r != 0)
        return r;
    i64 off = offset_now();
    if (off)
        shift_ts(&ts, off);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
