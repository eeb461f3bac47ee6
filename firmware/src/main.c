/* main.c - the device: start the target, then serve the link forever (controller core). */
#include <stdio.h>

#include "tdn/controller.h"
#include "tdn/hal.h"

static tdn_ctl ctl;

int main(int argc, char **argv)
{
    if (hal_init(argc, argv) != 0) {
        fprintf(stderr, "tdn-sim: target initialisation failed\n");
        return 1;
    }
    tdn_ctl_init(&ctl);
    tdn_ctl_run(&ctl);
    return 0;
}
