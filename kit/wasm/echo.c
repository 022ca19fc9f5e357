/* echo: Output = the message's Data; one outbox message back to From with the same Data.
 * Action "Fail" answers an Error; "Read-File" reads up to 64 bytes of the WeaveDrive file named
 * by Data and outputs them as hex; "Spawn" asks for a spawn. */
#include "ao_kit.h"

AO_IMPORT(__asyncjs__weavedrive_open) int weavedrive_open(const char *path, const char *mode);
AO_IMPORT(__asyncjs__weavedrive_read) int weavedrive_read(int fd, void *dst, size_t length);
AO_IMPORT(__asyncjs__weavedrive_close) int weavedrive_close(int fd);

static char path[1024];

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
    kit_puts(",\"Messages\":[{\"Target\":\"");
    kit_put(from ? from : "", flen);
    kit_puts("\",\"Data\":\"");
    kit_put(data ? data : "", dlen);
    kit_puts("\",\"Tags\":[{\"name\":\"Action\",\"value\":\"Echo\"}]}],\"Spawns\":[],\"Assignments\":[]}}");
    return kit_out;
}
