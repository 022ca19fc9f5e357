/* trap: Action "Trap" executes `unreachable`; "Bad-Pointer" returns a reply pointer outside
 * memory; anything else says "ok". */
#include "ao_kit.h"

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    if (kit_action_is(msg, "Trap")) __builtin_trap();
    if (kit_action_is(msg, "Bad-Pointer")) return (const char *)(uintptr_t)0x7ffffff0u;
    kit_begin();
    kit_puts("\"ok\"");
    return kit_end("[]");
}
