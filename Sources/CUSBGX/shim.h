// libusbgx 0.2.0 (Debian bookworm). Its .pc requires libconfig, which libusbgx-dev does not pull in.
#ifndef UMSD_CUSBGX_SHIM_H
#define UMSD_CUSBGX_SHIM_H
#include <usbg/usbg.h>
#include <usbg/function/ffs.h>
#endif
