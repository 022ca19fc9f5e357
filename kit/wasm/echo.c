/* echo: Output = the message's Data, and a reply with the same Data and Action "Echo", shaped as
 * aos's msg.reply shapes one: to the Reply-To tag, else to From; Anchor = the process's reference
 * counter as 32 digits (the MU pushes no outbox message without an Anchor); tags Data-Protocol,
 * Variant, Type, Reference (that counter), Action, then X-Reference (the message's X-Reference,
 * else its Reference) and X-Origin when the message has them. The counter lives in linear memory,
 * so it is part of the process's state.
 * Action "Fail" answers an Error; "Read-File" reads up to 64 bytes of the WeaveDrive file named
 * by Data and outputs them as hex; "Spawn" asks for a spawn. */
#include "ao_kit.h"

AO_IMPORT(__asyncjs__weavedrive_open) int weavedrive_open(const char *path, const char *mode);
AO_IMPORT(__asyncjs__weavedrive_read) int weavedrive_read(int fd, void *dst, size_t length);
AO_IMPORT(__asyncjs__weavedrive_close) int weavedrive_close(int fd);

static char path[1024];
static uint64_t reference; /* ao.reference: one more for each message sent */

static void put_tag(const char *name, const char *value, size_t len) {
    kit_puts(",{\"name\":\"");
    kit_puts(name);
    kit_puts("\",\"value\":\"");
    kit_put(value, len);
    kit_puts("\"}");
}

static const char *read_file(const char *data, size_t len) {
    unsigned char buf[64];
    if (len >= sizeof path) return kit_error("path too long");
    for (size_t i = 0; i < len; i++) path[i] = data[i];
    path[len] = 0;
    int fd = weavedrive_open(path, "r");
    if (!fd) return kit_error("no such file");
    int got = weavedrive_read(fd, buf, sizeof buf);
    weavedrive_close(fd);
    kit_begin();
    kit_puts("\"");
    kit_puthex(buf, got > 0 ? (size_t)got : 0);
    kit_puts("\"");
    return kit_end("[]");
}

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    size_t dlen, flen;
    const char *data = kit_field(msg, "Data", &dlen);
    const char *from = kit_field(msg, "From", &flen);
    if (kit_action_is(msg, "Fail")) return kit_error("asked to fail");
    if (kit_action_is(msg, "Read-File")) return read_file(data ? data : "", dlen);
    kit_begin();
    kit_puts("\"");
    kit_put(data ? data : "", dlen);
    kit_puts("\"");
    if (kit_action_is(msg, "Spawn")) {
        kit_puts(",\"Spawns\":[{\"Tags\":[{\"name\":\"Type\",\"value\":\"Process\"}],\"Data\":\"");
        kit_put(data ? data : "", dlen);
        kit_puts("\"}],\"Messages\":[],\"Assignments\":[]}}");
        return kit_out;
    }
    size_t tlen, rlen, olen;
    const char *target = kit_tag(msg, "Reply-To", &tlen);
    if (!target) {
        target = from ? from : "";
        tlen = from ? flen : 0;
    }
    const char *ref = kit_tag(msg, "X-Reference", &rlen);
    if (!ref) ref = kit_tag(msg, "Reference", &rlen);
    const char *origin = kit_tag(msg, "X-Origin", &olen);
    char anchor[32];
    uint64_t n = ++reference;
    for (int i = 31; i >= 0; i--, n /= 10) anchor[i] = (char)('0' + n % 10);
    kit_puts(",\"Messages\":[{\"Target\":\"");
    kit_put(target, tlen);
    kit_puts("\",\"Anchor\":\"");
    kit_put(anchor, sizeof anchor);
    kit_puts("\",\"Tags\":[{\"name\":\"Data-Protocol\",\"value\":\"ao\"}");
    put_tag("Variant", "ao.TN.1", 7);
    put_tag("Type", "Message", 7);
    kit_puts(",{\"name\":\"Reference\",\"value\":\"");
    kit_putu(reference);
    kit_puts("\"}");
    put_tag("Action", "Echo", 4);
    if (ref) put_tag("X-Reference", ref, rlen);
    if (origin) put_tag("X-Origin", origin, olen);
    kit_puts("],\"Data\":\"");
    kit_put(data ? data : "", dlen);
    kit_puts("\"}],\"Spawns\":[],\"Assignments\":[]}}");
    return kit_out;
}
