/* memory hog: Action "Grow" grows linear memory by Data MiB and writes one byte in the last
 * page (grown, not filled: the rest is never touched); Output = the memory size in bytes.
 * A growth the host refuses answers an Error. */
#include "ao_kit.h"

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    if (kit_action_is(msg, "Grow")) {
        size_t len;
        const char *data = kit_field(msg, "Data", &len);
        uint64_t mib = data ? kit_number(data, len) : 0;
        size_t pages = (size_t)(mib * 16);
        if (pages && __builtin_wasm_memory_grow(0, pages) == (size_t)-1) return kit_error("out of memory");
        size_t size = __builtin_wasm_memory_size(0) * 65536;
        volatile unsigned char *last = (volatile unsigned char *)(uintptr_t)(size - 1);
        *last = 0xA5;
    }
    kit_begin();
    kit_putu((uint64_t)__builtin_wasm_memory_size(0) * 65536);
    return kit_end("[]");
}
