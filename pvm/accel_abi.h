/* pvm/accel_abi.h — what the monitor (C++) and libvu-pvm-accel.so (C) agree on. */
#ifndef VU_PVM_ACCEL_ABI_H
#define VU_PVM_ACCEL_ABI_H

/* The trampoline page: fixed, page-aligned, far from where the kernel places mappings. */
#define VU_ACCEL_TRAMPOLINE_PAGE 0x7e5a00000000UL
/* Offset of the end of its syscall instruction: the instruction pointer seccomp sees. */
#define VU_ACCEL_SYSCALL_END 20
#define VU_ACCEL_ENV "VU_PVM_ACCEL"
#define VU_ACCEL_MAX_HOLDERS 256
#define VU_ACCEL_MAX_MOUNTS 64
#define VU_ACCEL_OVERFLOW_ID 65534

#endif
