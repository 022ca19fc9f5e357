/* actor: the kit's all-round process, so that the aoconnect scenarios run on a WASM module with
 * no Eval. One module, many actions (the message's Action tag); the state is in linear memory.
 *
 *   token  Balance (of Recipient, else Target, else From): a Balance reply with Balance, Account,
 *          Ticker and Data. Balances: a reply whose Data is the ledger as a JSON object.
 *          Transfer (Recipient, Quantity: a positive integer string): a Debit-Notice to the sender
 *          and a Credit-Notice to the recipient, or a Transfer-Error (Error, Message-Id) to the
 *          sender and nothing changes. Balances are unsigned 64-bit integers shown as strings.
 *          The process tag Token-Supply is minted on the first message to the process tag
 *          Token-Holder, else to the process itself (as aos's token blueprint does).
 *          Pay (Recipient, Quantity, Token = this process): sends that Transfer to the token.
 *          Credit-Notice / Debit-Notice: recorded in Notices ("credit:<From>:<Sender>:<Quantity>",
 *          "debit:<From>:<Recipient>:<Quantity>") and printed; with the process tag
 *          Pay-Back: <quantity>, a Credit-Notice is answered by a Transfer of that quantity back
 *          to its Sender on the notifying token.
 *   cron   Set-Sink (Sink): where ticks go. Cron: counts ticks, Output "cron tick <n>", and sends
 *          Tick (Data <n>) to the sink once one is set. Tick: records its From in Ticks.
 *   spawn  Spawn (Child-Name, Data): a Spawn of this module. Spawned: records its Process tag in
 *          Children and prints "spawned <pid>".
 *   plain  Info: Output "<owner>|<Name>" (owner = the process's From-Process tag, else its Owner,
 *          as aos sets Owner). Ping: a Pong reply with Data "pong:<Data>". Multiply (X, Y, each
 *          under 2^32): Output the product. Inc: Output "counter <n>". Get: a Got reply with
 *          Data <n>. Count: Output <n>. Note: records "<Id>:<Data>" in Notes, Output "noted <Id>".
 * Notices, Ticks, Children and Notes answer a reply whose Data is the list as a JSON array.
 * Replies go to the message's From, with a Reference tag and a 32-digit Anchor (which the MU needs
 * to push a message). Any other action answers an empty Output. Bad input (a malformed number, an
 * overflow, a list that is full, a reply too large) answers an Error, so the CU keeps the state
 * from before the message.
 */
#include "ao_kit.h"

/* ------------------------------------------------------------------ text buffers */

typedef struct {
    char *text;
    size_t cap, len;
    int full;
} Buf;

static void put(Buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->full = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) b->text[b->len++] = s[i];
    b->text[b->len] = 0;
}

static void puts_(Buf *b, const char *s) { put(b, s, kit_strlen(s)); }

static void putu(Buf *b, uint64_t n) {
    char digits[24];
    int i = 0;
    do { digits[i++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (i) put(b, &digits[--i], 1);
}

/* JSON string text (already escaped) written inside another JSON string: escape it once more. */
static void put_escaped(Buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') put(b, "\\", 1);
        put(b, &s[i], 1);
    }
}

/* ------------------------------------------------------------------ reading JSON */

typedef struct {
    const char *text;
    size_t len;
} Str;

static Str none(void) { Str s = {0, 0}; return s; }

/* The string after `key` in json[0..limit), as kit_after but bounded. */
static Str after(const char *json, size_t limit, const char *key) {
    size_t klen = kit_strlen(key);
    for (size_t i = 0; i + klen <= limit && json[i]; i++) {
        if (kit_startswith(json + i, key)) {
            const char *start = json + i + klen, *q = start;
            while (*q && *q != '"') q += (*q == '\\' && q[1]) ? 2 : 1;
            Str s = {start, (size_t)(q - start)};
            return s;
        }
    }
    return none();
}

static Str tag_in(const char *json, size_t limit, const char *name) {
    char key[96];
    const char *prefix = "{\"name\":\"", *suffix = "\",\"value\":\"";
    size_t n = 0;
    for (const char *p = prefix; *p; p++) key[n++] = *p;
    for (const char *p = name; *p && n < 60; p++) key[n++] = *p;
    for (const char *p = suffix; *p; p++) key[n++] = *p;
    key[n] = 0;
    return after(json, limit, key);
}

static int is(Str s, const char *text) { return s.text && kit_equal(s.text, s.len, text); }

static int same(Str a, Str b) {
    if (a.len != b.len) return 0;
    for (size_t i = 0; i < a.len; i++)
        if (a.text[i] != b.text[i]) return 0;
    return 1;
}

/* A positive decimal integer that fits 64 bits, else 0 (0 is never a valid amount here). */
static uint64_t amount(Str s) {
    if (!s.text || s.len == 0 || s.len > 20) return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.text[i];
        if (c < '0' || c > '9') return 0;
        uint64_t d = (uint64_t)(c - '0');
        if (n > UINT64_MAX / 10 || (n == UINT64_MAX / 10 && d > UINT64_MAX % 10)) return 0;
        n = n * 10 + d;
    }
    return n;
}

/* ------------------------------------------------------------------ the message being handled */

static const char *msg_json, *env_json;
static size_t msg_len, process_len; /* process_len: env up to the end of its Process object */

static Str field(const char *name) {
    char key[64];
    size_t n = 0;
    key[n++] = '"';
    for (const char *p = name; *p && n < 60; p++) key[n++] = *p;
    key[n++] = '"'; key[n++] = ':'; key[n++] = '"'; key[n] = 0;
    return after(msg_json, msg_len, key);
}

static Str tag(const char *name) { return tag_in(msg_json, msg_len, name); }
static Str process_tag(const char *name) { return tag_in(env_json, process_len, name); }
static Str process_id(void) { return after(env_json, process_len, "\"Process\":{\"Id\":\""); }

static Str owner(void) {
    Str from_process = process_tag("From-Process");
    return from_process.text ? from_process : after(env_json, process_len, "\"Owner\":\"");
}

/* ------------------------------------------------------------------ state */

#define ID_MAX 64
#define ACCOUNTS 256
#define LIST_MAX 256
#define ITEM_MAX 192

typedef struct {
    char id[ID_MAX];
    size_t len;
    uint64_t balance;
} Account;

typedef struct {
    size_t count;
    size_t len[LIST_MAX];
    char text[LIST_MAX][ITEM_MAX];
} List;

static int booted;
static Account accounts[ACCOUNTS];
static size_t account_count;
static uint64_t counter, fired, reference;
static char sink[ID_MAX];
static size_t sink_len;
static List notices, ticks, children, notes;

/* A valid account or process id: 1..63 characters, no escapes, no quotes. */
static int id_ok(Str s) {
    if (!s.text || s.len == 0 || s.len >= ID_MAX) return 0;
    for (size_t i = 0; i < s.len; i++)
        if (s.text[i] == '\\' || s.text[i] == '"') return 0;
    return 1;
}

static Account *account(Str id, int create) {
    for (size_t i = 0; i < account_count; i++)
        if (same((Str){accounts[i].id, accounts[i].len}, id)) return &accounts[i];
    if (!create || account_count == ACCOUNTS || !id_ok(id)) return 0;
    Account *a = &accounts[account_count++];
    for (size_t i = 0; i < id.len; i++) a->id[i] = id.text[i];
    a->len = id.len;
    a->balance = 0;
    return a;
}

/* Append the concatenation of parts to a list; 0 when it does not fit. */
static int record(List *list, const Str *parts, size_t n) {
    if (list->count == LIST_MAX) return 0;
    char *item = list->text[list->count];
    size_t len = 0;
    for (size_t p = 0; p < n; p++) {
        if (len + parts[p].len > ITEM_MAX) return 0;
        for (size_t i = 0; i < parts[p].len; i++) item[len++] = parts[p].text[i];
    }
    list->len[list->count++] = len;
    return 1;
}

static Str lit(const char *s) { Str r = {s, kit_strlen(s)}; return r; }

static void boot(void) {
    booted = 1;
    Str supply = process_tag("Token-Supply"), holder = process_tag("Token-Holder");
    uint64_t minted = amount(supply);
    Account *a = minted ? account(holder.text ? holder : process_id(), 1) : 0;
    if (a) a->balance = minted;
}

/* ------------------------------------------------------------------ the reply */

#define MESSAGES_SIZE 49152
static char output_text[4096], messages_text[MESSAGES_SIZE], spawns_text[4096];
static Buf output, messages, spawns;

/* Start an outbox message to target; add tags with tag_out, close with message_end. */
static void message_begin(Str target, const char *action) {
    if (messages.len > 1) puts_(&messages, ",");
    char anchor[33];
    uint64_t n = ++reference;
    for (int i = 31; i >= 0; i--) { anchor[i] = (char)('0' + n % 10); n /= 10; }
    anchor[32] = 0;
    puts_(&messages, "{\"Target\":\"");
    put(&messages, target.text, target.len);
    puts_(&messages, "\",\"Anchor\":\"");
    puts_(&messages, anchor);
    puts_(&messages, "\",\"Tags\":[{\"name\":\"Action\",\"value\":\"");
    puts_(&messages, action);
    puts_(&messages, "\"},{\"name\":\"Reference\",\"value\":\"");
    putu(&messages, reference);
    puts_(&messages, "\"}");
}

static void tag_out(const char *name, Str value) {
    puts_(&messages, ",{\"name\":\"");
    puts_(&messages, name);
    puts_(&messages, "\",\"value\":\"");
    put(&messages, value.text, value.len);
    puts_(&messages, "\"}");
}

/* Close the tags and give the Data: call data_begin, write the (escaped) Data, then data_end. */
static void data_begin(void) { puts_(&messages, "],\"Data\":\""); }
static void data_end(void) { puts_(&messages, "\"}"); }

static void message_end(Str data) {
    data_begin();
    put(&messages, data.text, data.len);
    data_end();
}

static void reply_begin(const char *action) { message_begin(field("From"), action); }

static void reply_list(const List *list) {
    reply_begin("List");
    data_begin();
    put(&messages, "[", 1);
    for (size_t i = 0; i < list->count; i++) {
        if (i) put(&messages, ",", 1);
        put(&messages, "\\\"", 2);
        put_escaped(&messages, list->text[i], list->len[i]);
        put(&messages, "\\\"", 2);
    }
    put(&messages, "]", 1);
    data_end();
}

static const char *finish(void) {
    put(&messages, "]", 1);
    put(&spawns, "]", 1);
    if (output.full || messages.full || spawns.full) return kit_error("the reply is too large");
    kit_begin();
    kit_puts("\"");
    kit_puts(output_text);
    kit_puts("\",\"Messages\":");
    kit_puts(messages_text);
    kit_puts(",\"Spawns\":");
    kit_puts(spawns_text);
    kit_puts(",\"Assignments\":[]}}");
    if (kit_pos + 1 >= KIT_OUT_SIZE) return kit_error("the reply is too large");
    return kit_out;
}

/* ------------------------------------------------------------------ actions */

static const char *transfer_error(const char *why) {
    reply_begin("Transfer-Error");
    tag_out("Message-Id", field("Id"));
    tag_out("Error", lit(why));
    message_end(lit(why));
    return finish();
}

static const char *transfer(void) {
    Str from = field("From"), to = tag("Recipient"), quantity = tag("Quantity");
    uint64_t qty = amount(quantity);
    if (!id_ok(to)) return transfer_error("Recipient is required");
    if (!qty) return transfer_error("Quantity must be a positive integer");
    Account *payer = account(from, 0);
    if (!payer || payer->balance < qty) return transfer_error("Insufficient Balance!");
    Account *payee = account(to, 1);
    if (!payee) return transfer_error("The ledger is full");
    payer = account(from, 0); /* creating the payee does not move accounts, but look again anyway */
    payer->balance -= qty;
    payee->balance += qty; /* cannot overflow: the sum of all balances is the minted supply */
    message_begin(from, "Debit-Notice");
    tag_out("Recipient", to);
    tag_out("Quantity", quantity);
    message_end(lit("You transferred tokens"));
    message_begin(to, "Credit-Notice");
    tag_out("Sender", from);
    tag_out("Quantity", quantity);
    message_end(lit("You received tokens"));
    return finish();
}

static const char *balance(void) {
    Str who = tag("Recipient");
    if (!who.text) who = tag("Target");
    if (!who.text) who = field("From");
    Account *a = account(who, 0);
    Buf digits = {(char[24]){0}, 24, 0, 0};
    putu(&digits, a ? a->balance : 0);
    Str value = {digits.text, digits.len};
    reply_begin("Balance");
    tag_out("Balance", value);
    tag_out("Account", who);
    Str ticker = process_tag("Ticker");
    tag_out("Ticker", ticker.text ? ticker : lit("KIT"));
    message_end(value);
    return finish();
}

static const char *balances(void) {
    reply_begin("Balances");
    data_begin();
    put(&messages, "{", 1);
    for (size_t i = 0; i < account_count; i++) {
        if (i) put(&messages, ",", 1);
        put(&messages, "\\\"", 2);
        put(&messages, accounts[i].id, accounts[i].len);
        put(&messages, "\\\":\\\"", 5);
        putu(&messages, accounts[i].balance);
        put(&messages, "\\\"", 2);
    }
    put(&messages, "}", 1);
    data_end();
    return finish();
}

static const char *pay(void) {
    Str token = tag("Token"), to = tag("Recipient"), quantity = tag("Quantity");
    if (!token.text) token = process_id();
    if (!id_ok(token) || !id_ok(to) || !amount(quantity)) return kit_error("Pay needs Recipient and a Quantity");
    message_begin(token, "Transfer");
    tag_out("Recipient", to);
    tag_out("Quantity", quantity);
    message_end(lit(""));
    puts_(&output, "sent");
    return finish();
}

static const char *notice(int credit) {
    Str from = field("From"), quantity = tag("Quantity");
    Str party = tag(credit ? "Sender" : "Recipient");
    Str parts[] = {lit(credit ? "credit:" : "debit:"), from, lit(":"), party, lit(":"), quantity};
    if (!party.text || !amount(quantity)) return kit_error("a notice needs a party and a Quantity");
    if (!record(&notices, parts, 6)) return kit_error("Notices is full");
    puts_(&output, credit ? "credit " : "debit ");
    put(&output, quantity.text, quantity.len);
    puts_(&output, credit ? " from " : " to ");
    put(&output, party.text, party.len);
    Str back = process_tag("Pay-Back");
    if (credit && amount(back) && id_ok(party)) {
        message_begin(from, "Transfer");
        tag_out("Recipient", party);
        tag_out("Quantity", back);
        message_end(lit(""));
    }
    return finish();
}

static const char *cron(void) {
    fired++;
    puts_(&output, "cron tick ");
    putu(&output, fired);
    if (sink_len) {
        Buf digits = {(char[24]){0}, 24, 0, 0};
        putu(&digits, fired);
        message_begin((Str){sink, sink_len}, "Tick");
        message_end((Str){digits.text, digits.len});
    }
    return finish();
}

static const char *set_sink(void) {
    Str target = tag("Sink");
    if (!id_ok(target)) return kit_error("Set-Sink needs a Sink");
    for (size_t i = 0; i < target.len; i++) sink[i] = target.text[i];
    sink_len = target.len;
    puts_(&output, "cron ready");
    return finish();
}

static const char *spawn(void) {
    Str module = after(env_json, kit_strlen(env_json), "\"Module\":{\"Id\":\"");
    Str name = tag("Child-Name"), data = field("Data");
    if (!id_ok(module)) return kit_error("the environment names no module");
    puts_(&spawns, "{\"Tags\":[{\"name\":\"Module\",\"value\":\"");
    put(&spawns, module.text, module.len);
    puts_(&spawns, "\"},{\"name\":\"Name\",\"value\":\"");
    if (name.text) put(&spawns, name.text, name.len); else puts_(&spawns, "child");
    puts_(&spawns, "\"}],\"Data\":\"");
    put(&spawns, data.text, data.len);
    puts_(&spawns, "\"}");
    puts_(&output, "spawning");
    return finish();
}

static const char *spawned(void) {
    Str child = tag("Process");
    if (!id_ok(child)) return kit_error("Spawned names no Process");
    if (!record(&children, &child, 1)) return kit_error("Children is full");
    puts_(&output, "spawned ");
    put(&output, child.text, child.len);
    return finish();
}

static const char *multiply(void) {
    Str xs = tag("X"), ys = tag("Y");
    uint64_t x = amount(xs), y = amount(ys);
    /* each under 2^32, so the product fits (a checked 64-bit multiply needs compiler-rt's __multi3) */
    if (!x || !y || x >> 32 || y >> 32) return kit_error("Multiply needs X and Y, positive integers under 2^32");
    putu(&output, x * y);
    return finish();
}

static const char *note(void) {
    Str id = field("Id"), data = field("Data");
    Str parts[] = {id, lit(":"), data};
    if (!record(&notes, parts, 3)) return kit_error("the note is too long, or Notes is full");
    puts_(&output, "noted ");
    put(&output, id.text, id.len);
    return finish();
}

static const char *info(void) {
    Str who = owner(), name = process_tag("Name");
    put(&output, who.text, who.len);
    put(&output, "|", 1);
    put(&output, name.text, name.len);
    return finish();
}

static const char *ping(void) {
    Str data = field("Data");
    reply_begin("Pong");
    data_begin();
    puts_(&messages, "pong:");
    put(&messages, data.text, data.len);
    data_end();
    return finish();
}

static const char *counted(const char *prefix, int reply) {
    if (reply) {
        reply_begin("Got");
        data_begin();
        putu(&messages, counter);
        data_end();
    } else {
        puts_(&output, prefix);
        putu(&output, counter);
    }
    return finish();
}

static const char *dispatch(Str action) {
    if (is(action, "Transfer")) return transfer();
    if (is(action, "Balance")) return balance();
    if (is(action, "Balances")) return balances();
    if (is(action, "Pay")) return pay();
    if (is(action, "Credit-Notice")) return notice(1);
    if (is(action, "Debit-Notice")) return notice(0);
    if (is(action, "Notices")) { reply_list(&notices); return finish(); }
    if (is(action, "Cron")) return cron();
    if (is(action, "Set-Sink")) return set_sink();
    if (is(action, "Tick")) {
        Str from = field("From");
        if (!record(&ticks, &from, 1)) return kit_error("Ticks is full");
        return finish();
    }
    if (is(action, "Ticks")) { reply_list(&ticks); return finish(); }
    if (is(action, "Spawn")) return spawn();
    if (is(action, "Spawned")) return spawned();
    if (is(action, "Children")) { reply_list(&children); return finish(); }
    if (is(action, "Info")) return info();
    if (is(action, "Ping")) return ping();
    if (is(action, "Multiply")) return multiply();
    if (is(action, "Inc")) { counter++; return counted("counter ", 0); }
    if (is(action, "Get")) return counted("", 1);
    if (is(action, "Count")) return counted("", 0);
    if (is(action, "Note")) return note();
    if (is(action, "Notes")) { reply_list(&notes); return finish(); }
    return finish();
}

static void reset(Buf *b, char *text, size_t cap, const char *start) {
    b->text = text; b->cap = cap; b->len = 0; b->full = 0;
    text[0] = 0;
    puts_(b, start);
}

AO_EXPORT(handle) const char *handle(const char *msg, const char *env) {
    msg_json = msg;
    env_json = env;
    msg_len = kit_strlen(msg);
    process_len = kit_strlen(env);
    for (size_t i = 0; env[i]; i++)
        if (kit_startswith(env + i, "},\"Module\":{")) { process_len = i; break; }
    reset(&output, output_text, sizeof output_text, "");
    reset(&messages, messages_text, sizeof messages_text, "[");
    reset(&spawns, spawns_text, sizeof spawns_text, "[");
    if (!booted) boot();
    return dispatch(tag("Action"));
}
