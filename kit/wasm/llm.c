/* llm: a WASM process that runs a model through the llm@1.0 device (the pyao.device_call import).
 *
 * Each message names one llm@1.0 operation by its Action; the request is JSON
 * {"op": ..., "args": [...]} and the device's answer {"ok":true,"values":[...]} becomes the Output
 * (an {"ok":false,"error":...} answer becomes the message's Error):
 *   Load        Data = a WeaveDrive path (/data/<id>)     -> load(path)
 *   Prompt      Data = text                               -> set_prompt(text)
 *   Add         Data = text                               -> add(text)
 *   Run         tag Tokens = n                            -> run(n)
 *   Generate    Data = prompt, tag Options = JSON text    -> generate(prompt, options)
 *   Info                                                  -> info()
 *   Run-Then-Fail   like Run, then the message fails (its device state must roll back)
 *   Raw         Data = the whole request JSON, sent as is (to test bad requests)
 * Strings are copied into the request in their escaped JSON form, as they arrive in the message.
 */
#include "ao_kit.h"

__attribute__((import_module("pyao"), import_name("device_call")))
int64_t device_call(const char *name, size_t name_len, const char *req, size_t req_len, char *out, size_t out_cap);

#define REQ_SIZE 16384
#define ANSWER_SIZE 32768
static char req[REQ_SIZE];
static size_t req_pos;
static char answer[ANSWER_SIZE];

static void req_put(const char *s, size_t n) {
    for (size_t i = 0; i < n && req_pos + 1 < REQ_SIZE; i++) req[req_pos++] = s[i];
}

static void req_puts(const char *s) { req_put(s, kit_strlen(s)); }

/* {"op":"<op>","args":[ ... the caller appends args ... ]} */
static void req_begin(const char *op) {
    req_pos = 0;
    req_puts("{\"op\":\"");
    req_puts(op);
    req_puts("\",\"args\":[");
}

static void req_string(const char *escaped, size_t n) {
    req_puts("\"");
    req_put(escaped ? escaped : "", n);
    req_puts("\"");
}

/* Send the request; on success the answer becomes the Output, else its error the Error. */
static const char *send(int then_fail) {
    req_puts("]}");
    const char *name = "llm@1.0";
    char *out = answer;
    size_t cap = ANSWER_SIZE - 1;
    int64_t got = device_call(name, kit_strlen(name), req, req_pos, out, cap);
    if (got < 0) { /* the answer is larger than our buffer: ask again with room for it */
        cap = (size_t)(-got);
        out = malloc(cap + 1);
        if (!out) return kit_error("out of memory for the device's answer");
        got = device_call(name, kit_strlen(name), req, req_pos, out, cap);
        if (got < 0 || (size_t)got + 1 > KIT_OUT_SIZE / 2) return kit_error("the device's answer is too large");
    }
    out[got] = 0;
    if (kit_startswith(out, "{\"ok\":false")) {
        size_t elen;
        const char *why = kit_field(out, "error", &elen);
        char text[1024];
        size_t n = elen < sizeof text - 1 ? elen : sizeof text - 1;
        for (size_t i = 0; i < n; i++) text[i] = why[i];
        text[n] = 0;
        return kit_error(text);
    }
    if (then_fail) return kit_error("asked to fail after the device call");
    kit_begin();
    kit_put(out, (size_t)got);
    return kit_end("[]");
}

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    (void)env;
    size_t dlen = 0, tlen = 0;
    const char *data = kit_field(msg, "Data", &dlen);
    if (kit_action_is(msg, "Load")) { req_begin("load"); req_string(data, dlen); return send(0); }
    if (kit_action_is(msg, "Prompt")) { req_begin("set_prompt"); req_string(data, dlen); return send(0); }
    if (kit_action_is(msg, "Add")) { req_begin("add"); req_string(data, dlen); return send(0); }
    if (kit_action_is(msg, "Info")) { req_begin("info"); return send(0); }
    if (kit_action_is(msg, "Run") || kit_action_is(msg, "Run-Then-Fail")) {
        const char *tokens = kit_tag(msg, "Tokens", &tlen);
        req_begin("run");
        req_put(tlen ? tokens : "1", tlen ? tlen : 1);
        return send(kit_action_is(msg, "Run-Then-Fail"));
    }
    if (kit_action_is(msg, "Generate")) {
        const char *options = kit_tag(msg, "Options", &tlen);
        req_begin("generate");
        req_string(data, dlen);
        req_puts(",");
        req_string(options, tlen);
        return send(0);
    }
    if (kit_action_is(msg, "Raw")) { /* the Data is the request, unescaped only for \" */
        req_pos = 0;
        for (size_t i = 0; i < dlen; i++) {
            if (data[i] == '\\' && i + 1 < dlen) i++;
            req_put(&data[i], 1);
        }
        const char *name = "llm@1.0";
        int64_t got = device_call(name, kit_strlen(name), req, req_pos, answer, ANSWER_SIZE - 1);
        if (got < 0) return kit_error("the device's answer is too large");
        answer[got] = 0;
        kit_begin();
        kit_put(answer, (size_t)got);
        return kit_end("[]");
    }
    return kit_error("unknown Action");
}
