/*
 * QEMU TCG plugin: counts the guest instructions executed and prints the running total each
 * time the guest makes the marker syscall (getppid, 173 on aarch64). The guest brackets every
 * invoke() with markers; the difference between two lines is that invoke's instruction count.
 *
 * Built by scripts/arm-setup.sh: gcc -O2 -shared -fPIC -I<qemu>/include/qemu icount.c
 * Run: qemu-aarch64 -plugin libicount.so -d plugin -D counts.log ...
 * The count is one global total: the guest runs the interpreter with one thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARKER_SYSCALL 173

static uint64_t executed;

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    char line[64];
    if (num != MARKER_SYSCALL)
        return;
    snprintf(line, sizeof line, "mark %" PRIu64 "\n", executed);
    qemu_plugin_outs(line);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    return 0;
}
