/* counter: a number kept in linear memory. Action "Increment" adds one; "Increment-Then-Fail"
 * adds one and answers an Error (the CU must keep the state from before); "Increment-Then-Trap"
 * adds one and traps. Every reply's Output is the count. */
#include "ao_kit.h"

static uint64_t count;

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    if (kit_action_is(msg, "Increment") || kit_action_is(msg, "Increment-Then-Fail") ||
        kit_action_is(msg, "Increment-Then-Trap"))
        count++;
    if (kit_action_is(msg, "Increment-Then-Fail")) return kit_error("failed after incrementing");
    if (kit_action_is(msg, "Increment-Then-Trap")) __builtin_trap();
    kit_begin();
    kit_putu(count);
    return kit_end("[]");
}
