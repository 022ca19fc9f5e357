/* pyao's ao module kit: the few helpers a C process module needs to speak the aos ABI.
 *
 * A module exports  const char *handle(const char *msg_json, const char *env_json)
 * and returns       {"ok":true,"response":{"Output":...,"Messages":[...],"Spawns":[],"Assignments":[]}}
 * exactly as aos's Lua bridge does, plus malloc/free for the host to pass the two strings.
 * wasm32 builds link wasi-libc (malloc, free); wasm64 builds are freestanding and use the
 * LIFO bump allocator below (the host frees its two strings in reverse order each message).
 *
 * JSON handling is deliberately small: the host sends compact JSON (no spaces), so a top-level
 * string field is found as "Name":"..." and its escaped text is copied into the reply verbatim.
 */
#ifndef AO_KIT_H
#define AO_KIT_H

#include <stddef.h>
#include <stdint.h>

#define AO_EXPORT(name) __attribute__((export_name(#name)))
#define AO_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

/* ------------------------------------------------------------------ memory */

#ifdef __wasm64__
extern unsigned char __heap_base;
static uintptr_t kit_heap_top = 0;

AO_EXPORT(malloc) void *malloc(size_t n) {
    if (!kit_heap_top) kit_heap_top = (uintptr_t)&__heap_base;
    uintptr_t start = (kit_heap_top + 15) & ~(uintptr_t)15;
    uintptr_t end = start + n + 16;
    size_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        size_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
    }
    *(uintptr_t *)start = kit_heap_top; /* where the heap stood before this block */
    kit_heap_top = end;
    return (void *)(start + 16);
}

AO_EXPORT(free) void free(void *p) {
    uintptr_t block = (uintptr_t)p;
    if (block && block + 0 >= 16) {
        uintptr_t before = *(uintptr_t *)(block - 16);
        if (before < kit_heap_top && block - 16 >= before) kit_heap_top = before; /* LIFO only */
    }
}
#else
#include <stdlib.h>
#endif

static inline size_t kit_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static inline int kit_startswith(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

static inline int kit_equal(const char *a, size_t alen, const char *b) {
    size_t blen = kit_strlen(b);
    if (alen != blen) return 0;
    for (size_t i = 0; i < alen; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------ reading the message */

/* The escaped text of the JSON string that follows `key` ("\"Data\":\"" style); *len set. */
static inline const char *kit_after(const char *json, const char *key, size_t *len) {
    size_t klen = kit_strlen(key);
    for (const char *p = json; *p; p++) {
        if (kit_startswith(p, key)) {
            const char *start = p + klen, *q = start;
            while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
            *len = (size_t)(q - start);
            return start;
        }
    }
    *len = 0;
    return 0;
}

static inline const char *kit_field(const char *json, const char *name, size_t *len) {
    char key[64];
    size_t n = 0;
    key[n++] = '"';
    for (const char *p = name; *p && n < 60; p++) key[n++] = *p;
    key[n++] = '"'; key[n++] = ':'; key[n++] = '"'; key[n] = 0;
    return kit_after(json, key, len);
}

static inline const char *kit_tag(const char *json, const char *name, size_t *len) {
    char key[96];
    const char *prefix = "{\"name\":\"", *suffix = "\",\"value\":\"";
    size_t n = 0;
    for (const char *p = prefix; *p; p++) key[n++] = *p;
    for (const char *p = name; *p && n < 60; p++) key[n++] = *p;
    for (const char *p = suffix; *p; p++) key[n++] = *p;
    key[n] = 0;
    return kit_after(json, key, len);
}

static inline int kit_action_is(const char *msg, const char *action) {
    size_t len;
    const char *value = kit_tag(msg, "Action", &len);
    return value && kit_equal(value, len, action);
}

static inline uint64_t kit_number(const char *text, size_t len) {
    uint64_t n = 0;
    for (size_t i = 0; i < len && text[i] >= '0' && text[i] <= '9'; i++) n = n * 10 + (uint64_t)(text[i] - '0');
    return n;
}

/* ------------------------------------------------------------------ writing the reply */

#define KIT_OUT_SIZE 65536
static char kit_out[KIT_OUT_SIZE];
static size_t kit_pos;

static inline void kit_put(const char *s, size_t n) {
    for (size_t i = 0; i < n && kit_pos + 1 < KIT_OUT_SIZE; i++) kit_out[kit_pos++] = s[i];
    kit_out[kit_pos] = 0;
}

static inline void kit_puts(const char *s) { kit_put(s, kit_strlen(s)); }

static inline void kit_putu(uint64_t n) {
    char digits[24];
    int i = 0;
    do { digits[i++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (i) kit_put(&digits[--i], 1);
}

static inline void kit_puthex(const unsigned char *bytes, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) { kit_put(&hex[bytes[i] >> 4], 1); kit_put(&hex[bytes[i] & 15], 1); }
}

/* Start {"ok":true,"response":{"Output": — the caller writes the Output value next. */
static inline void kit_begin(void) {
    kit_pos = 0;
    kit_puts("{\"ok\":true,\"response\":{\"Output\":");
}

/* Close the reply with `messages` (a JSON array text, "[]" for none). */
static inline const char *kit_end(const char *messages) {
    kit_puts(",\"Messages\":");
    kit_puts(messages);
    kit_puts(",\"Spawns\":[],\"Assignments\":[]}}");
    return kit_out;
}

static inline const char *kit_error(const char *text) {
    kit_pos = 0;
    kit_puts("{\"ok\":true,\"response\":{\"Error\":\"");
    kit_puts(text);
    kit_puts("\",\"Output\":\"\",\"Messages\":[],\"Spawns\":[],\"Assignments\":[]}}");
    return kit_out;
}

#endif
