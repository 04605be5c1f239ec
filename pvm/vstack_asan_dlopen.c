// pvm/vstack_asan_dlopen.c — only in vu-vstack-asan (the AddressSanitizer build the tests use):
// libvdeplug opens its VNL plugins with RTLD_DEEPBIND, which ASan's dlopen refuses (it cannot
// intercept a library bound to itself first). This dlopen, found before libc's and ASan's,
// drops that flag: the plugin binds to the global symbols, as it would anyway (no clash).
#define _GNU_SOURCE
#include <dlfcn.h>

void* __interceptor_dlopen(const char* file, int flags);

void* dlopen(const char* file, int flags) { return __interceptor_dlopen(file, flags & ~RTLD_DEEPBIND); }
