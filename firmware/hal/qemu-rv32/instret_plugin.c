/* instret_plugin.c - a QEMU TCG plugin that gives each hart a retired-instruction counter.
 *
 * Why: QEMU (7.x and later, without -icount) implements minstret as the HOST's time-stamp
 * counter, and with -icount as one instruction count shared by all harts, so neither tells
 * how the work splits across the 8 workers. This plugin counts the instructions each vCPU
 * executes and stores the counts where the guest can read them: in a page of guest RAM,
 * which the launcher makes a shared file (-object memory-backend-file,share=on) that the
 * plugin maps too. The firmware's HAL reads its hart's slot instead of minstret when the
 * page carries the magic (docs/qemu.md).
 *
 *   -plugin libinstret.so,ram=RAMFILE,offset=PAGE_OFFSET_IN_RAM (the plugin path itself is "file")
 *
 * The page's layout is hal/common/icnt_page.h. Each vCPU thread writes only its own slot,
 * before running each translated block. Counts are per block entered: a block left early by a
 * trap counts whole (firmware blocks seldom trap: WFI is the only case).
 *
 * Built against the plugin API version 1 (QEMU 7.2); the few declarations it needs are
 * repeated here because distributions do not ship qemu-plugin.h.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/icnt_page.h"

/* ---- from qemu-plugin.h (API version 1) ---- */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_HARTS 64u
#define PAGE 4096u

static volatile uint64_t *count; /* count[vcpu] in the shared guest page */

static void tb_exec(unsigned int vcpu, void *n_insns)
{
    if (vcpu < MAX_HARTS) count[vcpu] += (uint64_t)(uintptr_t)n_insns;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS,
                                         (void *)(uintptr_t)qemu_plugin_tb_n_insns(tb));
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *file = NULL;
    long offset = -1;
    uint8_t *page;
    int fd;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "ram=", 4) == 0) file = argv[i] + 4;
        else if (strncmp(argv[i], "offset=", 7) == 0) offset = strtol(argv[i] + 7, NULL, 0);
    }
    if (!file || offset < 0 || offset % PAGE) {
        fprintf(stderr, "instret plugin: needs ram=RAMFILE,offset=PAGE_OFFSET\n");
        return -1;
    }
    fd = open(file, O_RDWR);
    if (fd < 0) { perror("instret plugin: open"); return -1; }
    page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    close(fd);
    if (page == MAP_FAILED) { perror("instret plugin: mmap"); return -1; }
    memset(page, 0, PAGE);
    count = (volatile uint64_t *)(page + 4 * ICNT_HEADER_WORDS);
    ((volatile uint32_t *)page)[1] = MAX_HARTS;
    __sync_synchronize();
    ((volatile uint32_t *)page)[0] = ICNT_MAGIC;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    return 0;
}
