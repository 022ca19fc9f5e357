/* endless loop: Action "Spin" never returns (the CU's fuel must stop it); anything else says "ok". */
#include "ao_kit.h"

static volatile uint64_t spins;

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    if (kit_action_is(msg, "Spin"))
        for (;;) spins++;
    kit_begin();
    kit_puts("\"ok\"");
    return kit_end("[]");
}
