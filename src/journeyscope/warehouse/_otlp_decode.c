/*
 * journeyscope.warehouse._otlp_decode: OTLP/protobuf trace requests decoded straight into Arrow buffers.
 *
 * The compiled twin of otlp.decode_request, optional: otlp.py uses the Python decoder when this module did
 * not build. Its contract is exactness. For every body it either returns exactly the rows, rejected count
 * and first reason the Python decoder gives, or None, and then the Python decoder reads the body. So it
 * gives up on anything unusual on the wire (malformed, a singular field sent twice, a group, an overlong
 * varint, invalid UTF-8, deep nesting: whatever upb might read otherwise or refuse), and it hands the rare
 * valid spans it does not write itself to the Python rules one by one (Rules.span, otlp.span_values): spans
 * with events or links, key-value list values, duplicate keys, a journey key holding anything but a
 * string, a customer or journey id of more bytes than the id limit has characters, a non-ASCII channel, the
 * turn conventions of other instrumentations.
 *
 * A body is decoded in four steps:
 *   1. parse  (no GIL)  the whole body, checked, into resource, span and attribute records; each span is
 *                       FAST (written here), SLOW (the Python rules write it) or REJECTED;
 *   2. python (GIL)     only when needed: the Python rules for SLOW spans and resources, and repr() of the
 *                       doubles of FAST ones (PyOS_double_to_string needs the GIL);
 *   3. write  (no GIL)  every column in Arrow's layout: validity bitmap, int32 offsets, data;
 *   4. return (GIL)     the buffers as bytes, which otlp.py wraps with pa.Array.from_buffers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "_otlp_wire.h"

/* Every step returns one of these; GIVE_UP sends the body to the Python decoder. */
enum { OK = 0, GIVE_UP = 1, NO_MEMORY = 2 };
#define TRY(expr)                \
    do {                         \
        int rc_ = (expr);        \
        if (rc_ != OK)           \
            return rc_;          \
    } while (0)
#define MEM(expr)                \
    do {                         \
        if ((expr) < 0)          \
            return NO_MEMORY;    \
    } while (0)

/* Messages nested deeper than this are left to upb (which refuses past 100). */
#define MAX_DEPTH 64
/* OTLP times are unsigned 64-bit; the Python decoder refuses a span past the largest signed one. */
#define MAX_NS ((uint64_t)INT64_MAX)

/* ================================================================ message layouts */

/* The fields of each message, by number, as opentelemetry-proto defines them. otlp.py compares this
 * table (exported as MESSAGES) with the installed descriptors and does not use this module if they
 * differ: a field upb knows and this decoder skipped would be read differently. */
enum { T_NONE, T_VARINT, T_FIXED64, T_FIXED32, T_STRING, T_BYTES, T_MESSAGE };
static const char *const TYPE_NAMES[] = {"", "varint", "fixed64", "fixed32", "string", "bytes", "message"};
static const int TYPE_WIRE[] = {-1, WIRE_VARINT, WIRE_FIXED64, WIRE_FIXED32, WIRE_LEN, WIRE_LEN, WIRE_LEN};

#define MAX_FIELD 16
typedef struct {
    uint8_t type, repeated;
    const char *name;
} FieldSpec;
typedef struct {
    const char *name;
    FieldSpec fields[MAX_FIELD + 1];
} MessageSpec;

#define ONE(type, name) {type, 0, name}
#define MANY(type, name) {type, 1, name}

static const MessageSpec REQUEST = {"opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest", {
    [1] = MANY(T_MESSAGE, "resource_spans")}};
static const MessageSpec RESOURCE_SPANS = {"opentelemetry.proto.trace.v1.ResourceSpans", {
    [1] = ONE(T_MESSAGE, "resource"), [2] = MANY(T_MESSAGE, "scope_spans"),
    [3] = ONE(T_STRING, "schema_url")}};
static const MessageSpec RESOURCE = {"opentelemetry.proto.resource.v1.Resource", {
    [1] = MANY(T_MESSAGE, "attributes"), [2] = ONE(T_VARINT, "dropped_attributes_count"),
    [3] = MANY(T_MESSAGE, "entity_refs")}};
static const MessageSpec SCOPE_SPANS = {"opentelemetry.proto.trace.v1.ScopeSpans", {
    [1] = ONE(T_MESSAGE, "scope"), [2] = MANY(T_MESSAGE, "spans"), [3] = ONE(T_STRING, "schema_url")}};
static const MessageSpec SCOPE = {"opentelemetry.proto.common.v1.InstrumentationScope", {
    [1] = ONE(T_STRING, "name"), [2] = ONE(T_STRING, "version"), [3] = MANY(T_MESSAGE, "attributes"),
    [4] = ONE(T_VARINT, "dropped_attributes_count")}};
static const MessageSpec SPAN = {"opentelemetry.proto.trace.v1.Span", {
    [1] = ONE(T_BYTES, "trace_id"), [2] = ONE(T_BYTES, "span_id"), [3] = ONE(T_STRING, "trace_state"),
    [4] = ONE(T_BYTES, "parent_span_id"), [5] = ONE(T_STRING, "name"), [6] = ONE(T_VARINT, "kind"),
    [7] = ONE(T_FIXED64, "start_time_unix_nano"), [8] = ONE(T_FIXED64, "end_time_unix_nano"),
    [9] = MANY(T_MESSAGE, "attributes"), [10] = ONE(T_VARINT, "dropped_attributes_count"),
    [11] = MANY(T_MESSAGE, "events"), [12] = ONE(T_VARINT, "dropped_events_count"),
    [13] = MANY(T_MESSAGE, "links"), [14] = ONE(T_VARINT, "dropped_links_count"),
    [15] = ONE(T_MESSAGE, "status"), [16] = ONE(T_FIXED32, "flags")}};
static const MessageSpec EVENT = {"opentelemetry.proto.trace.v1.Span.Event", {
    [1] = ONE(T_FIXED64, "time_unix_nano"), [2] = ONE(T_STRING, "name"), [3] = MANY(T_MESSAGE, "attributes"),
    [4] = ONE(T_VARINT, "dropped_attributes_count")}};
static const MessageSpec LINK = {"opentelemetry.proto.trace.v1.Span.Link", {
    [1] = ONE(T_BYTES, "trace_id"), [2] = ONE(T_BYTES, "span_id"), [3] = ONE(T_STRING, "trace_state"),
    [4] = MANY(T_MESSAGE, "attributes"), [5] = ONE(T_VARINT, "dropped_attributes_count"),
    [6] = ONE(T_FIXED32, "flags")}};
static const MessageSpec STATUS = {"opentelemetry.proto.trace.v1.Status", {
    [2] = ONE(T_STRING, "message"), [3] = ONE(T_VARINT, "code")}};
static const MessageSpec KEY_VALUE = {"opentelemetry.proto.common.v1.KeyValue", {
    [1] = ONE(T_STRING, "key"), [2] = ONE(T_MESSAGE, "value"), [3] = ONE(T_VARINT, "key_strindex")}};
static const MessageSpec ANY_VALUE = {"opentelemetry.proto.common.v1.AnyValue", {
    [1] = ONE(T_STRING, "string_value"), [2] = ONE(T_VARINT, "bool_value"), [3] = ONE(T_VARINT, "int_value"),
    [4] = ONE(T_FIXED64, "double_value"), [5] = ONE(T_MESSAGE, "array_value"),
    [6] = ONE(T_MESSAGE, "kvlist_value"), [7] = ONE(T_BYTES, "bytes_value"),
    [8] = ONE(T_VARINT, "string_value_strindex")}};
static const MessageSpec ARRAY_VALUE = {"opentelemetry.proto.common.v1.ArrayValue", {
    [1] = MANY(T_MESSAGE, "values")}};
static const MessageSpec KEY_VALUE_LIST = {"opentelemetry.proto.common.v1.KeyValueList", {
    [1] = MANY(T_MESSAGE, "values")}};

static const MessageSpec *const MESSAGES[] = {
    &REQUEST, &RESOURCE_SPANS, &RESOURCE, &SCOPE_SPANS, &SCOPE, &SPAN, &EVENT, &LINK, &STATUS,
    &KEY_VALUE, &ANY_VALUE, &ARRAY_VALUE, &KEY_VALUE_LIST,
};

typedef struct {
    uint32_t number;
    uint64_t value;      /* varint, fixed32 or fixed64 */
    const uint8_t *data; /* length-delimited */
    uint32_t len;
} Field;

/* The next field of a message that `spec` knows, checked (wire type, once only if singular, UTF-8 of a
 * string); fields it does not know are stepped over, as upb keeps them aside. 1: a field in *f; 0: the end
 * of the message; -1: give up. `seen` has a bit per singular field number already read. */
static int next_field(Reader *r, const MessageSpec *spec, uint32_t *seen, Field *f)
{
    for (;;) {
        if (r->p == r->end)
            return 0;
        uint64_t tag;
        if (read_varint32(r, UINT32_MAX, &tag) < 0)
            return -1;
        uint32_t number = (uint32_t)(tag >> 3);
        int wire = (int)(tag & 7);
        if (number == 0)
            return -1;
        const FieldSpec *field = number <= MAX_FIELD ? &spec->fields[number] : NULL;
        if (field == NULL || field->type == T_NONE) {
            if (skip_field(r, wire) < 0)
                return -1;
            continue;
        }
        if (wire != TYPE_WIRE[field->type]) /* upb would keep it as an unknown field */
            return -1;
        if (!field->repeated) { /* sent twice, the last scalar wins and messages merge: left to upb */
            if (*seen & (1u << number))
                return -1;
            *seen |= 1u << number;
        }
        f->number = number;
        switch (wire) {
        case WIRE_VARINT:
            if (read_varint(r, &f->value) < 0)
                return -1;
            break;
        case WIRE_FIXED64:
            if (r->end - r->p < 8)
                return -1;
            f->value = load_le(r->p, 8);
            r->p += 8;
            break;
        case WIRE_FIXED32:
            if (r->end - r->p < 4)
                return -1;
            f->value = load_le(r->p, 4);
            r->p += 4;
            break;
        default:
            if (read_len(r, &f->data, &f->len) < 0)
                return -1;
            if (field->type == T_STRING && !utf8_valid(f->data, f->len))
                return -1;
        }
        return 1;
    }
}

/* ================================================================ rules (from otlp.py) */

typedef struct {
    const char *s; /* UTF-8; NULL for None */
    Py_ssize_t n;
} Text;

enum {
    LIFT_CUSTOMER, LIFT_JOURNEY, LIFT_JOURNEY_NAME, LIFT_STAGE, LIFT_CHANNEL, LIFT_COHORT, LIFT_CONSENT,
    N_LIFTED
};
enum { W_LIFT, W_ROLE, W_TEXT, W_NAME, W_SOURCE }; /* what a watched attribute key is for */
#define N_REASONS 7
#define MAX_KEYS 8
#define MAX_WATCH 48
#define MAX_NAMES 64

/* The journeyscope conventions the decoder applies, given once by otlp.py (so they are written down in
 * one place, the Python one) and read-only afterwards: decoding threads share one Rules. */
typedef struct {
    PyObject_HEAD
    PyObject *span;     /* span_values(Span) of a SLOW span's bytes: its values, or why it is refused */
    PyObject *resource; /* resource_values(Resource) of a SLOW resource's bytes */
    PyObject *reasons;  /* tuple of str: why a span is refused, by check (REASON_*) */
    PyObject *keep;     /* list of every str the Texts below point into */
    Text kinds[MAX_NAMES], statuses[MAX_NAMES];
    int n_kinds, n_statuses;
    Text watch[MAX_WATCH]; /* attribute keys looked up in every span */
    uint8_t watch_what[MAX_WATCH];
    int n_watch;
    uint8_t lifted[N_LIFTED][MAX_KEYS]; /* watch indexes of each journey column's keys, first first */
    uint8_t n_lifted[N_LIFTED];
    int role, text, name; /* watch indexes of the turn keys */
    Text prefixes[MAX_NAMES], roles[MAX_NAMES];
    int n_prefixes, n_roles;
    Text turn_span, service_key;
    Py_ssize_t max_id_length; /* characters of a customer or journey id; longer ones are refused */
    Text alias_from[MAX_NAMES], alias_to[MAX_NAMES];
    int n_aliases;
} RulesObject;

/* The last two (an id too long) are the Python rules' verdict: a span whose id may be too long is SLOW. */
enum { REASON_TRACE_ID, REASON_SPAN_ID, REASON_PARENT, REASON_START, REASON_TIME_RANGE, REASON_LONG_CUSTOMER,
       REASON_LONG_JOURNEY };

/* ================================================================ records of step 1 */

enum { V_NONE, V_STRING, V_BOOL, V_INT, V_DOUBLE, V_BYTES, V_ARRAY, V_OPAQUE }; /* OPAQUE: holds a kvlist */
enum { FAST, SLOW, REJECTED };

typedef struct {
    const uint8_t *key, *data; /* data: V_STRING and V_BYTES the bytes, V_ARRAY the ArrayValue message */
    uint32_t key_len, len;
    uint8_t kind;
    uint64_t number;       /* V_BOOL 0 or 1; V_INT the int64's bits; V_DOUBLE the double's bits */
    uint32_t first_double; /* index in Decoder.doubles of the first double this value holds */
} Attr;

typedef struct {
    const uint8_t *raw; /* the Resource message (NULL: none sent) */
    uint32_t raw_len, first_attr, n_attrs, first_double;
    int32_t service; /* FAST: the attribute holding service.name, or -1 */
    uint8_t how;
    PyObject *values; /* SLOW: (service_name, resource_json) from the Python rules */
    Text service_name, json;
} ResourceRec;

typedef struct {
    const uint8_t *name;
    uint32_t name_len, resource;
} ScopeRec;

typedef struct {
    const uint8_t *raw, *trace_id, *span_id, *parent, *name, *message;
    uint32_t raw_len, trace_len, span_len, parent_len, name_len, message_len;
    uint64_t start, end;
    int32_t kind, code;
    uint32_t scope, first_attr, n_attrs, first_double;
    int32_t lifted[N_LIFTED];               /* attribute index of each journey column's value, or -1 */
    int32_t turn_role, turn_text, turn_name; /* attribute indexes; turn_role < 0: no turn */
    uint8_t how, reason;                     /* reason: REJECTED, a REASON_* */
    uint32_t slow;                           /* SLOW: index in Decoder.slow */
} SpanRec;

/* ================================================================ output columns */

enum {
    COL_TRACE_ID, COL_SPAN_ID, COL_PARENT, COL_NAME, COL_KIND, COL_START, COL_END, COL_STATUS_CODE,
    COL_STATUS_MESSAGE, COL_CUSTOMER, COL_JOURNEY, COL_JOURNEY_NAME, COL_STAGE, COL_CHANNEL, COL_COHORT,
    COL_CONSENT, COL_OUTCOME, COL_TURNS, COL_SERVICE, COL_SCOPE, COL_ATTRIBUTES, COL_EVENTS, COL_LINKS,
    COL_RESOURCE, N_COLUMNS
};
/* rows.SPAN_SCHEMA's names, in its order (otlp.py checks they still match). */
static const char *const COLUMN_NAMES[N_COLUMNS] = {
    "trace_id", "span_id", "parent_span_id", "name", "kind", "start_time", "end_time", "status_code",
    "status_message", "customer_id", "journey_id", "journey_name", "stage", "channel", "cohort", "consent",
    "outcome", "turns", "service_name", "scope_name", "attributes", "events", "links", "resource",
};
/* The columns of otlp.span_values' tuple, in its order: all but the resource's and the scope's. */
#define N_VALUES 21
static const int VALUE_COLUMNS[N_VALUES] = {
    COL_TRACE_ID, COL_SPAN_ID, COL_PARENT, COL_NAME, COL_KIND, COL_START, COL_END, COL_STATUS_CODE,
    COL_STATUS_MESSAGE, COL_CUSTOMER, COL_JOURNEY, COL_JOURNEY_NAME, COL_STAGE, COL_CHANNEL, COL_COHORT,
    COL_CONSENT, COL_OUTCOME, COL_TURNS, COL_ATTRIBUTES, COL_EVENTS, COL_LINKS,
};

/* One Arrow column being written: a validity bit per row, then for strings int32 offsets and UTF-8 data,
 * for times int64 data, for lists int32 offsets into their child. */
typedef struct {
    Buf valid, offsets, data;
    size_t rows, nulls;
} Column;

/* A piece of a Buf. */
typedef struct {
    uint32_t offset, len;
} Piece;

/* The role, text and name of one turn of a SLOW span. */
typedef struct {
    Text field[3];
} TurnTexts;

typedef struct {
    PyObject *values; /* the Python rules' answer: a tuple, or the reason (str) the span is refused */
    int rejected;
    Text text[N_COLUMNS]; /* the string columns */
    int64_t start, end;
    int start_null, end_null, turns_null;
    uint32_t first_turn, n_turns; /* in Decoder.slow_turns */
} SlowRow;

typedef struct {
    const RulesObject *rules;
    Buf resources, scopes, spans, attrs; /* ResourceRec, ScopeRec, SpanRec, Attr */
    Buf doubles;                         /* double: every double of a FAST record, in the order written */
    Buf slow, slow_turns;                /* SlowRow; TurnTexts */
    Buf double_text, double_at;          /* step 2: repr() of each finite double; its Piece of double_text */
    Buf scratch;                         /* the duplicate-key check of long attribute lists */
    Buf resource_json, resource_at;      /* step 3: the JSON of every FAST resource; its Piece */
    size_t n_slow_resources, rows;
    Column col[N_COLUMNS];
    Column turn[3]; /* the turns' role, text and name */
} Decoder;

/* ================================================================ step 1: parse */

static const uint8_t NO_KEY[1] = {0};

static int parse_any_value(Decoder *d, const uint8_t *data, uint32_t len, int depth, Buf *doubles, Attr *v);

/* An ArrayValue, checked; *opaque is set when it holds a kvlist anywhere (then Python writes it). */
static int check_array(Decoder *d, const uint8_t *data, uint32_t len, int depth, Buf *doubles, int *opaque)
{
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &ARRAY_VALUE, &seen, &f)) > 0) {
        Attr element;
        TRY(parse_any_value(d, f.data, f.len, depth + 1, doubles, &element));
        if (element.kind == V_OPAQUE)
            *opaque = 1;
    }
    return rc < 0 ? GIVE_UP : OK;
}

/* One KeyValue into *kv (key, value); a missing value is None, as in the Python decoder. */
static int parse_key_value(Decoder *d, const uint8_t *data, uint32_t len, int depth, Buf *doubles, Attr *kv)
{
    if (depth > MAX_DEPTH)
        return GIVE_UP;
    memset(kv, 0, sizeof *kv);
    kv->key = NO_KEY;
    kv->kind = V_NONE;
    kv->first_double = doubles ? (uint32_t)VEC_LEN(*doubles, double) : 0;
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &KEY_VALUE, &seen, &f)) > 0) {
        if (f.number == 1) {
            kv->key = f.data;
            kv->key_len = f.len;
        }
        else if (f.number == 2) {
            Attr value;
            TRY(parse_any_value(d, f.data, f.len, depth + 1, doubles, &value));
            kv->kind = value.kind;
            kv->data = value.data;
            kv->len = value.len;
            kv->number = value.number;
        }
        /* 3, key_strindex: the Python decoder reads `key` only */
    }
    return rc < 0 ? GIVE_UP : OK;
}

/* A KeyValueList, checked only: a map value is always written by the Python rules. */
static int check_kvlist(Decoder *d, const uint8_t *data, uint32_t len, int depth)
{
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &KEY_VALUE_LIST, &seen, &f)) > 0) {
        Attr kv;
        TRY(parse_key_value(d, f.data, f.len, depth + 1, NULL, &kv));
    }
    return rc < 0 ? GIVE_UP : OK;
}

/* One AnyValue into *v. Every double it holds (itself, or in its arrays) is appended to `doubles` when that
 * is not NULL, in the order write_value meets them. */
static int parse_any_value(Decoder *d, const uint8_t *data, uint32_t len, int depth, Buf *doubles, Attr *v)
{
    if (depth > MAX_DEPTH)
        return GIVE_UP;
    v->kind = V_NONE; /* no member set: None */
    v->data = NULL;
    v->len = 0;
    v->number = 0;
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &ANY_VALUE, &seen, &f)) > 0) {
        if (seen & ~(1u << f.number)) /* a second member of the oneof: upb keeps the last one */
            return GIVE_UP;
        switch (f.number) {
        case 1:
            v->kind = V_STRING;
            v->data = f.data;
            v->len = f.len;
            break;
        case 2:
            v->kind = V_BOOL;
            v->number = f.value != 0;
            break;
        case 3:
            v->kind = V_INT;
            v->number = f.value;
            break;
        case 4: {
            v->kind = V_DOUBLE;
            v->number = f.value;
            double value;
            memcpy(&value, &f.value, sizeof value);
            if (doubles)
                MEM(buf_put(doubles, &value, sizeof value));
            break;
        }
        case 5: {
            int opaque = 0;
            TRY(check_array(d, f.data, f.len, depth + 1, doubles, &opaque));
            v->kind = opaque ? V_OPAQUE : V_ARRAY;
            v->data = f.data;
            v->len = f.len;
            break;
        }
        case 6:
            TRY(check_kvlist(d, f.data, f.len, depth + 1));
            v->kind = V_OPAQUE;
            break;
        case 7:
            v->kind = V_BYTES;
            v->data = f.data;
            v->len = f.len;
            break;
        default: /* 8, string_value_strindex: the Python decoder reads None */
            v->kind = V_NONE;
        }
    }
    return rc < 0 ? GIVE_UP : OK;
}

/* Append the KeyValue to the attribute records (of the span or resource being parsed). */
static int push_attribute(Decoder *d, const uint8_t *data, uint32_t len, int depth, uint32_t *count)
{
    Attr kv;
    TRY(parse_key_value(d, data, len, depth, &d->doubles, &kv));
    Attr *slot = vec_push(&d->attrs, sizeof(Attr));
    if (slot == NULL)
        return NO_MEMORY;
    *slot = kv;
    (*count)++;
    return OK;
}

/* A list of KeyValues that only needs checking (events', links' and scopes' attributes). */
static int check_key_value(Decoder *d, const uint8_t *data, uint32_t len, int depth)
{
    Attr ignored;
    return parse_key_value(d, data, len, depth, NULL, &ignored);
}

static int same_text(const uint8_t *s, size_t n, Text t)
{
    return t.s != NULL && (size_t)t.n == n && memcmp(s, t.s, n) == 0;
}

static int all_zero(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i])
            return 0;
    return 1;
}

static int compare_keys(const void *a, const void *b)
{
    const Text *x = a, *y = b;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return memcmp(x->s, y->s, (size_t)x->n);
}

/* Whether two attributes share a key (a Python dict keeps the first one's place and the last one's value,
 * which the Python rules reproduce). */
static int has_duplicate_keys(Decoder *d, const Attr *a, uint32_t n, int *duplicate)
{
    *duplicate = 0;
    if (n <= 16) {
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t j = 0; j < i; j++)
                if (a[i].key_len == a[j].key_len && memcmp(a[i].key, a[j].key, a[i].key_len) == 0) {
                    *duplicate = 1;
                    return OK;
                }
        return OK;
    }
    d->scratch.len = 0;
    MEM(buf_grow(&d->scratch, n * sizeof(Text)));
    Text *keys = VEC(d->scratch, Text);
    for (uint32_t i = 0; i < n; i++) {
        keys[i].s = (const char *)a[i].key;
        keys[i].n = a[i].key_len;
    }
    qsort(keys, n, sizeof(Text), compare_keys);
    for (uint32_t i = 1; i < n; i++)
        if (compare_keys(&keys[i - 1], &keys[i]) == 0) {
            *duplicate = 1;
            break;
        }
    return OK;
}

static int has_opaque_value(const Attr *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (a[i].kind == V_OPAQUE)
            return 1;
    return 0;
}

/* Drop the attribute records (and doubles) of the record parsed last: the Python rules will read it. */
static void drop_attributes(Decoder *d, uint32_t first_attr, uint32_t first_double)
{
    d->attrs.len = (size_t)first_attr * sizeof(Attr);
    d->doubles.len = (size_t)first_double * sizeof(double);
}

/* Whether the rules in C write this span exactly as otlp.span_values would (*fast), finding on the way the
 * attributes its journey columns and its turn come from. */
static int classify_span(Decoder *d, SpanRec *s, int *fast)
{
    const RulesObject *rules = d->rules;
    const Attr *a = VEC(d->attrs, Attr) + s->first_attr;
    uint32_t n = s->n_attrs;
    *fast = 0;
    if (has_opaque_value(a, n))
        return OK;
    int duplicate;
    TRY(has_duplicate_keys(d, a, n, &duplicate));
    if (duplicate)
        return OK;

    int32_t found[MAX_WATCH];
    int source = 0; /* a key only another instrumentation's turn convention uses */
    for (int w = 0; w < rules->n_watch; w++)
        found[w] = -1;
    for (uint32_t i = 0; i < n; i++) {
        for (int w = 0; w < rules->n_watch; w++)
            if (same_text(a[i].key, a[i].key_len, rules->watch[w]))
                found[w] = (int32_t)i;
        for (int p = 0; p < rules->n_prefixes; p++) {
            Text prefix = rules->prefixes[p];
            if (a[i].key_len >= prefix.n && memcmp(a[i].key, prefix.s, (size_t)prefix.n) == 0)
                source = 1;
        }
    }
    for (int w = 0; w < rules->n_watch; w++)
        if (rules->watch_what[w] == W_SOURCE && found[w] >= 0)
            source = 1;

    /* A journey column: the first of its keys holding a non-empty string (another value: Python's str()). */
    for (int column = 0; column < N_LIFTED; column++) {
        s->lifted[column] = -1;
        for (int k = 0; k < rules->n_lifted[column]; k++) {
            int32_t i = found[rules->lifted[column][k]];
            if (i < 0)
                continue;
            if (a[i].kind != V_STRING)
                return OK;
            if (a[i].len && s->lifted[column] < 0)
                s->lifted[column] = (int32_t)s->first_attr + i;
        }
    }
    /* An id of more bytes than the limit has characters: the Python rules count them and may refuse it. */
    for (int column = LIFT_CUSTOMER; column <= LIFT_JOURNEY; column++) {
        int32_t id = s->lifted[column];
        if (id >= 0 && (Py_ssize_t)VEC(d->attrs, Attr)[id].len > rules->max_id_length)
            return OK;
    }
    int32_t channel = s->lifted[LIFT_CHANNEL];
    if (channel >= 0 && !is_ascii(VEC(d->attrs, Attr)[channel].data, VEC(d->attrs, Attr)[channel].len))
        return OK; /* str.strip() and str.lower() know all of Unicode */

    /* journeyscope's own turn span (otlp.span_values' first rule); every other turn rule is Python's. */
    s->turn_role = s->turn_text = s->turn_name = -1;
    int32_t role = found[rules->role];
    if (role >= 0) {
        if (a[role].kind != V_STRING)
            return OK;
        int known = 0;
        for (int r = 0; r < rules->n_roles; r++)
            known |= same_text(a[role].data, a[role].len, rules->roles[r]);
        if (!known)
            return OK;
        int32_t text = found[rules->text], name = found[rules->name];
        if (text >= 0) { /* no text: no turn */
            if (a[text].kind != V_STRING || (name >= 0 && a[name].kind != V_STRING))
                return OK;
            s->turn_role = (int32_t)s->first_attr + role;
            s->turn_text = (int32_t)s->first_attr + text;
            s->turn_name = name >= 0 && a[name].len ? (int32_t)s->first_attr + name : -1;
        }
    }
    else if (source && !same_text(s->name, s->name_len, rules->turn_span)) {
        return OK;
    }
    *fast = 1;
    return OK;
}

static int parse_status(Decoder *d, SpanRec *s, const uint8_t *data, uint32_t len)
{
    (void)d;
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &STATUS, &seen, &f)) > 0) {
        if (f.number == 2) {
            s->message = f.data;
            s->message_len = f.len;
        }
        else if (f.number == 3) {
            s->code = (int32_t)(uint32_t)f.value; /* an enum is an int32: upb keeps the low 32 bits */
        }
    }
    return rc < 0 ? GIVE_UP : OK;
}

/* An Event or a Link, checked only: a span with either is written by the Python rules. */
static int check_event_or_link(Decoder *d, const MessageSpec *spec, uint32_t attributes, const uint8_t *data,
                               uint32_t len)
{
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, spec, &seen, &f)) > 0)
        if (f.number == attributes)
            TRY(check_key_value(d, f.data, f.len, 6));
    return rc < 0 ? GIVE_UP : OK;
}

static int parse_span(Decoder *d, uint32_t scope, const uint8_t *data, uint32_t len)
{
    SpanRec *s = vec_push(&d->spans, sizeof(SpanRec)); /* no other span is pushed while this one is parsed */
    if (s == NULL)
        return NO_MEMORY;
    s->raw = data;
    s->raw_len = len;
    s->scope = scope;
    s->first_attr = (uint32_t)VEC_LEN(d->attrs, Attr);
    s->first_double = (uint32_t)VEC_LEN(d->doubles, double);
    static const uint8_t empty[1] = {0};
    s->trace_id = s->span_id = s->parent = s->name = s->message = empty;
    int extra = 0; /* events or links */
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &SPAN, &seen, &f)) > 0) {
        switch (f.number) {
        case 1: s->trace_id = f.data; s->trace_len = f.len; break;
        case 2: s->span_id = f.data; s->span_len = f.len; break;
        case 4: s->parent = f.data; s->parent_len = f.len; break;
        case 5: s->name = f.data; s->name_len = f.len; break;
        case 6: s->kind = (int32_t)(uint32_t)f.value; break;
        case 7: s->start = f.value; break;
        case 8: s->end = f.value; break;
        case 9: TRY(push_attribute(d, f.data, f.len, 5, &s->n_attrs)); break;
        case 11: TRY(check_event_or_link(d, &EVENT, 3, f.data, f.len)); extra = 1; break;
        case 13: TRY(check_event_or_link(d, &LINK, 4, f.data, f.len)); extra = 1; break;
        case 15: TRY(parse_status(d, s, f.data, f.len)); break;
        default: break; /* trace_state, flags, dropped counts: checked, not stored */
        }
    }
    if (rc < 0)
        return GIVE_UP;

    /* otlp.span_values' checks, in its order */
    int reason = -1;
    if (s->trace_len != 16 || all_zero(s->trace_id, 16))
        reason = REASON_TRACE_ID;
    else if (s->span_len != 8 || all_zero(s->span_id, 8))
        reason = REASON_SPAN_ID;
    else if (s->parent_len != 0 && s->parent_len != 8)
        reason = REASON_PARENT;
    else if (s->start == 0)
        reason = REASON_START;
    else if (s->start > MAX_NS || s->end > MAX_NS)
        reason = REASON_TIME_RANGE;
    int fast = 0;
    if (reason >= 0) {
        s->how = REJECTED;
        s->reason = (uint8_t)reason;
    }
    else if (!extra) {
        TRY(classify_span(d, s, &fast));
    }
    if (fast) {
        s->how = FAST;
        return OK;
    }
    drop_attributes(d, s->first_attr, s->first_double);
    s->n_attrs = 0;
    if (s->how != REJECTED) {
        s->how = SLOW;
        s->slow = (uint32_t)VEC_LEN(d->slow, SlowRow);
        if (vec_push(&d->slow, sizeof(SlowRow)) == NULL)
            return NO_MEMORY;
    }
    return OK;
}

static int parse_scope(Decoder *d, uint32_t scope, const uint8_t *data, uint32_t len)
{
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &SCOPE, &seen, &f)) > 0) {
        if (f.number == 1) {
            VEC(d->scopes, ScopeRec)[scope].name = f.data;
            VEC(d->scopes, ScopeRec)[scope].name_len = f.len;
        }
        else if (f.number == 3) {
            TRY(check_key_value(d, f.data, f.len, 5));
        }
    }
    return rc < 0 ? GIVE_UP : OK;
}

static int parse_scope_spans(Decoder *d, uint32_t resource, const uint8_t *data, uint32_t len)
{
    uint32_t scope = (uint32_t)VEC_LEN(d->scopes, ScopeRec);
    ScopeRec *record = vec_push(&d->scopes, sizeof(ScopeRec));
    if (record == NULL)
        return NO_MEMORY;
    record->resource = resource;
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &SCOPE_SPANS, &seen, &f)) > 0) {
        if (f.number == 1)
            TRY(parse_scope(d, scope, f.data, f.len));
        else if (f.number == 2)
            TRY(parse_span(d, scope, f.data, f.len));
    }
    return rc < 0 ? GIVE_UP : OK;
}

static int parse_resource(Decoder *d, uint32_t resource, const uint8_t *data, uint32_t len)
{
    ResourceRec *res = &VEC(d->resources, ResourceRec)[resource]; /* no resource is pushed meanwhile */
    res->raw = data;
    res->raw_len = len;
    res->first_attr = (uint32_t)VEC_LEN(d->attrs, Attr);
    res->first_double = (uint32_t)VEC_LEN(d->doubles, double);
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &RESOURCE, &seen, &f)) > 0) {
        if (f.number == 1)
            TRY(push_attribute(d, f.data, f.len, 4, &res->n_attrs));
        else if (f.number == 3)
            return GIVE_UP; /* entity_refs: new in OTLP, not worth checking here */
    }
    if (rc < 0)
        return GIVE_UP;

    const Attr *a = VEC(d->attrs, Attr) + res->first_attr;
    int duplicate;
    TRY(has_duplicate_keys(d, a, res->n_attrs, &duplicate));
    int fast = !duplicate && !has_opaque_value(a, res->n_attrs);
    for (uint32_t i = 0; fast && i < res->n_attrs; i++)
        if (same_text(a[i].key, a[i].key_len, d->rules->service_key)) {
            if (a[i].kind == V_STRING)
                res->service = (int32_t)(res->first_attr + i);
            else
                fast = 0; /* str() of another value: Python's */
        }
    if (!fast) {
        drop_attributes(d, res->first_attr, res->first_double);
        res->n_attrs = 0;
        res->service = -1;
        res->how = SLOW;
        d->n_slow_resources++;
    }
    return OK;
}

static int parse_resource_spans(Decoder *d, const uint8_t *data, uint32_t len)
{
    uint32_t resource = (uint32_t)VEC_LEN(d->resources, ResourceRec);
    ResourceRec *res = vec_push(&d->resources, sizeof(ResourceRec));
    if (res == NULL)
        return NO_MEMORY;
    res->service = -1;
    Reader r = {data, data + len};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &RESOURCE_SPANS, &seen, &f)) > 0) {
        if (f.number == 1)
            TRY(parse_resource(d, resource, f.data, f.len));
        else if (f.number == 2)
            TRY(parse_scope_spans(d, resource, f.data, f.len));
    }
    return rc < 0 ? GIVE_UP : OK;
}

static int parse_request(Decoder *d, const uint8_t *body, size_t size)
{
    Reader r = {body, body + size};
    uint32_t seen = 0;
    Field f;
    int rc;
    while ((rc = next_field(&r, &REQUEST, &seen, &f)) > 0)
        TRY(parse_resource_spans(d, f.data, f.len));
    return rc < 0 ? GIVE_UP : OK;
}

/* ================================================================ step 2: the Python rules (GIL held) */

/* A str (UTF-8 kept alive by `owner`) or None; GIVE_UP for anything else, which Arrow would refuse or
 * convert its own way in the Python decoder. */
static int text_of(PyObject *value, Text *out)
{
    if (value == Py_None) {
        out->s = NULL;
        out->n = 0;
        return OK;
    }
    if (!PyUnicode_CheckExact(value))
        return GIVE_UP;
    out->s = PyUnicode_AsUTF8AndSize(value, &out->n);
    if (out->s == NULL) { /* a lone surrogate: Arrow refuses it too */
        PyErr_Clear();
        return GIVE_UP;
    }
    return OK;
}

static int time_of(PyObject *value, int64_t *out, int *null)
{
    *out = 0;
    *null = value == Py_None;
    if (*null)
        return OK;
    if (!PyLong_CheckExact(value))
        return GIVE_UP;
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow || (number == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return GIVE_UP;
    }
    *out = number;
    return OK;
}

/* The turns value of span_values: None or a list of {"role", "text", "name"} dicts. */
static int turns_of(Decoder *d, PyObject *value, SlowRow *row)
{
    row->turns_null = value == Py_None;
    row->first_turn = (uint32_t)VEC_LEN(d->slow_turns, TurnTexts);
    if (row->turns_null)
        return OK;
    if (!PyList_CheckExact(value))
        return GIVE_UP;
    static const char *const keys[3] = {"role", "text", "name"};
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
        PyObject *turn = PyList_GET_ITEM(value, i);
        if (!PyDict_CheckExact(turn))
            return GIVE_UP;
        TurnTexts *texts = vec_push(&d->slow_turns, sizeof(TurnTexts));
        if (texts == NULL)
            return NO_MEMORY;
        for (int k = 0; k < 3; k++) {
            PyObject *item = PyDict_GetItemString(turn, keys[k]); /* borrowed; missing: null, as pa.array */
            TRY(text_of(item ? item : Py_None, &texts->field[k]));
        }
        row->n_turns++;
    }
    return OK;
}

static int slow_span(Decoder *d, const SpanRec *s, SlowRow *row)
{
    PyObject *raw = PyBytes_FromStringAndSize((const char *)s->raw, s->raw_len);
    if (raw == NULL)
        return NO_MEMORY;
    row->values = PyObject_CallOneArg(d->rules->span, raw);
    Py_DECREF(raw);
    if (row->values == NULL) { /* the Python decoder raises it again, with its own traceback */
        PyErr_Clear();
        return GIVE_UP;
    }
    if (PyUnicode_CheckExact(row->values)) {
        row->rejected = 1;
        return OK;
    }
    if (!PyTuple_CheckExact(row->values) || PyTuple_GET_SIZE(row->values) != N_VALUES)
        return GIVE_UP;
    for (int v = 0; v < N_VALUES; v++) {
        PyObject *item = PyTuple_GET_ITEM(row->values, v);
        int column = VALUE_COLUMNS[v];
        if (column == COL_START)
            TRY(time_of(item, &row->start, &row->start_null));
        else if (column == COL_END)
            TRY(time_of(item, &row->end, &row->end_null));
        else if (column == COL_TURNS)
            TRY(turns_of(d, item, row));
        else
            TRY(text_of(item, &row->text[column]));
    }
    return OK;
}

static int slow_resource(Decoder *d, ResourceRec *res)
{
    PyObject *raw = PyBytes_FromStringAndSize(res->raw ? (const char *)res->raw : "", res->raw_len);
    if (raw == NULL)
        return NO_MEMORY;
    res->values = PyObject_CallOneArg(d->rules->resource, raw);
    Py_DECREF(raw);
    if (res->values == NULL) {
        PyErr_Clear();
        return GIVE_UP;
    }
    if (!PyTuple_CheckExact(res->values) || PyTuple_GET_SIZE(res->values) != 2)
        return GIVE_UP;
    TRY(text_of(PyTuple_GET_ITEM(res->values, 0), &res->service_name));
    return text_of(PyTuple_GET_ITEM(res->values, 1), &res->json);
}

/* repr() of every finite double the FAST records hold, as json writes floats. */
static int format_doubles(Decoder *d)
{
    const double *values = VEC(d->doubles, double);
    size_t n = VEC_LEN(d->doubles, double);
    MEM(buf_grow(&d->double_at, n * sizeof(Piece)));
    for (size_t i = 0; i < n; i++) {
        Piece at = {(uint32_t)d->double_text.len, 0};
        if (isfinite(values[i])) {
            char *text = PyOS_double_to_string(values[i], 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
            if (text == NULL) {
                PyErr_Clear();
                return NO_MEMORY;
            }
            size_t len = strlen(text);
            int failed = buf_put(&d->double_text, text, len);
            PyMem_Free(text);
            if (failed < 0 || d->double_text.len > UINT32_MAX)
                return NO_MEMORY;
            at.len = (uint32_t)len;
        }
        MEM(buf_put(&d->double_at, &at, sizeof at));
    }
    return OK;
}

static int run_python_rules(Decoder *d)
{
    ResourceRec *resources = VEC(d->resources, ResourceRec);
    for (size_t i = 0; i < VEC_LEN(d->resources, ResourceRec); i++)
        if (resources[i].how == SLOW)
            TRY(slow_resource(d, &resources[i]));
    SpanRec *spans = VEC(d->spans, SpanRec);
    for (size_t i = 0; i < VEC_LEN(d->spans, SpanRec); i++)
        if (spans[i].how == SLOW)
            TRY(slow_span(d, &spans[i], &VEC(d->slow, SlowRow)[spans[i].slow]));
    return format_doubles(d);
}

/* ================================================================ step 3: write the columns */

static int end_row(Column *c, int valid)
{
    if (c->rows % 8 == 0)
        MEM(buf_put(&c->valid, "", 1)); /* a new bitmap byte, all null */
    if (valid)
        ((unsigned char *)c->valid.data)[c->rows / 8] |= (unsigned char)(1u << (c->rows % 8));
    else
        c->nulls++;
    c->rows++;
    return OK;
}

/* Close a string row whose bytes are in c->data (a list row: `end` is its child's length). */
static int end_offset_row(Column *c, size_t end, int valid)
{
    if (end > INT32_MAX) /* past Arrow's string offsets: the Python decoder makes chunks */
        return GIVE_UP;
    int32_t offset = (int32_t)end;
    MEM(buf_put(&c->offsets, &offset, sizeof offset));
    return end_row(c, valid);
}

static int put_string(Column *c, const void *s, size_t n)
{
    MEM(buf_put(&c->data, s, n));
    return end_offset_row(c, c->data.len, 1);
}

static int put_text(Column *c, Text t)
{
    return t.s ? put_string(c, t.s, (size_t)t.n) : end_offset_row(c, c->data.len, 0);
}

static int put_null(Column *c)
{
    return end_offset_row(c, c->data.len, 0);
}

static int put_time(Column *c, int64_t value, int valid)
{
    MEM(buf_put(&c->data, &value, sizeof value));
    return end_row(c, valid);
}

static int is_python_space(uint8_t c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); /* str.isspace(), in ASCII */
}

/* rows._channel for an ASCII channel: stripped, lowercased, an alias replaced by its channel. */
static int put_channel(const RulesObject *rules, Column *c, const uint8_t *s, size_t n)
{
    size_t first = 0, last = n;
    while (first < last && is_python_space(s[first]))
        first++;
    while (last > first && is_python_space(s[last - 1]))
        last--;
    size_t start = c->data.len, len = last - first;
    MEM(buf_grow(&c->data, len));
    char *folded = c->data.data + start;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = s[first + i];
        folded[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
    }
    c->data.len += len;
    for (int k = 0; k < rules->n_aliases; k++)
        if (same_text((const uint8_t *)folded, len, rules->alias_from[k])) {
            c->data.len = start;
            MEM(buf_put(&c->data, rules->alias_to[k].s, (size_t)rules->alias_to[k].n));
            break;
        }
    return end_offset_row(c, c->data.len, 1);
}

static int put_double(const Decoder *d, Buf *out, uint64_t bits, uint32_t index)
{
    double value;
    memcpy(&value, &bits, sizeof value);
    if (isnan(value)) /* rows._finite: not JSON, so str(value) */
        return buf_put(out, "\"nan\"", 5) < 0 ? NO_MEMORY : OK;
    if (isinf(value))
        return buf_put(out, value > 0 ? "\"inf\"" : "\"-inf\"", value > 0 ? 5 : 6) < 0 ? NO_MEMORY : OK;
    if (index >= VEC_LEN(d->double_at, Piece))
        return GIVE_UP; /* cannot happen: every double was formatted in step 2 */
    Piece at = VEC(d->double_at, Piece)[index];
    MEM(buf_put(out, d->double_text.data + at.offset, at.len));
    return OK;
}

/* One value as json_text writes the Python value otlp._value makes of it; `next_double` walks the doubles
 * in the order step 1 collected them. */
static int write_value(Decoder *d, Buf *out, const Attr *v, int depth, uint32_t *next_double)
{
    switch (v->kind) {
    case V_NONE:
        MEM(buf_put(out, "null", 4));
        return OK;
    case V_STRING:
        MEM(put_json_string(out, v->data, v->len));
        return OK;
    case V_BOOL:
        MEM(v->number ? buf_put(out, "true", 4) : buf_put(out, "false", 5));
        return OK;
    case V_INT: {
        int64_t number;
        memcpy(&number, &v->number, sizeof number);
        MEM(put_int(out, number));
        return OK;
    }
    case V_DOUBLE:
        return put_double(d, out, v->number, (*next_double)++);
    case V_BYTES:
        MEM(put_base64_string(out, v->data, v->len));
        return OK;
    case V_ARRAY: {
        MEM(buf_put(out, "[", 1));
        Reader r = {v->data, v->data + v->len};
        uint32_t seen = 0;
        Field f;
        int rc, first = 1;
        while ((rc = next_field(&r, &ARRAY_VALUE, &seen, &f)) > 0) {
            Attr element; /* parsed again: checked in step 1, so the same reading */
            TRY(parse_any_value(d, f.data, f.len, depth + 2, NULL, &element));
            if (!first)
                MEM(buf_put(out, ",", 1));
            first = 0;
            TRY(write_value(d, out, &element, depth + 2, next_double));
        }
        if (rc < 0)
            return GIVE_UP;
        MEM(buf_put(out, "]", 1));
        return OK;
    }
    default:
        return GIVE_UP; /* V_OPAQUE never reaches here: its record went to the Python rules */
    }
}

/* json_text(attributes) of a FAST record: keys unique, in wire order. */
static int write_attributes(Decoder *d, Buf *out, uint32_t first, uint32_t n)
{
    const Attr *a = VEC(d->attrs, Attr) + first;
    MEM(buf_put(out, "{", 1));
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            MEM(buf_put(out, ",", 1));
        MEM(put_json_string(out, a[i].key, a[i].key_len));
        MEM(buf_put(out, ":", 1));
        uint32_t next_double = a[i].first_double;
        TRY(write_value(d, out, &a[i], 0, &next_double)); /* depth: checked in step 1 already */
    }
    MEM(buf_put(out, "}", 1));
    return OK;
}

/* The JSON text of every FAST resource that has attributes, written once for all its spans. */
static int write_resources(Decoder *d)
{
    size_t n = VEC_LEN(d->resources, ResourceRec);
    MEM(buf_grow(&d->resource_at, n * sizeof(Piece)));
    for (size_t i = 0; i < n; i++) {
        const ResourceRec *res = &VEC(d->resources, ResourceRec)[i];
        Piece at = {(uint32_t)d->resource_json.len, 0};
        if (res->how == FAST && res->n_attrs) {
            TRY(write_attributes(d, &d->resource_json, res->first_attr, res->n_attrs));
            if (d->resource_json.len > INT32_MAX)
                return GIVE_UP;
            at.len = (uint32_t)(d->resource_json.len - at.offset);
        }
        MEM(buf_put(&d->resource_at, &at, sizeof at));
    }
    return OK;
}

static const Attr *attr_at(const Decoder *d, int32_t index)
{
    return &VEC(d->attrs, Attr)[index];
}

static int put_attr_string(Column *c, const Decoder *d, int32_t index)
{
    return index < 0 ? put_null(c) : put_string(c, attr_at(d, index)->data, attr_at(d, index)->len);
}

/* The service, scope and resource columns of a span, from its ResourceSpans and ScopeSpans. */
static int write_context(Decoder *d, const SpanRec *s)
{
    const ScopeRec *scope = &VEC(d->scopes, ScopeRec)[s->scope];
    const ResourceRec *res = &VEC(d->resources, ResourceRec)[scope->resource];
    Column *c = d->col;
    if (scope->name_len)
        TRY(put_string(&c[COL_SCOPE], scope->name, scope->name_len));
    else
        TRY(put_null(&c[COL_SCOPE]));
    if (res->how == SLOW) {
        TRY(put_text(&c[COL_SERVICE], res->service_name));
        return put_text(&c[COL_RESOURCE], res->json);
    }
    int32_t service = res->service >= 0 && attr_at(d, res->service)->len ? res->service : -1;
    TRY(put_attr_string(&c[COL_SERVICE], d, service));
    Piece at = VEC(d->resource_at, Piece)[scope->resource];
    if (!at.len)
        return put_null(&c[COL_RESOURCE]);
    return put_string(&c[COL_RESOURCE], d->resource_json.data + at.offset, at.len);
}

static int put_name(Column *c, const Text *names, int count, int32_t number)
{
    return number >= 0 && number < count ? put_text(c, names[number]) : put_null(c);
}

static int write_fast_span(Decoder *d, const SpanRec *s)
{
    const RulesObject *rules = d->rules;
    Column *c = d->col;
    MEM(put_hex(&c[COL_TRACE_ID].data, s->trace_id, 16));
    TRY(end_offset_row(&c[COL_TRACE_ID], c[COL_TRACE_ID].data.len, 1));
    MEM(put_hex(&c[COL_SPAN_ID].data, s->span_id, 8));
    TRY(end_offset_row(&c[COL_SPAN_ID], c[COL_SPAN_ID].data.len, 1));
    if (s->parent_len == 8 && !all_zero(s->parent, 8)) {
        MEM(put_hex(&c[COL_PARENT].data, s->parent, 8));
        TRY(end_offset_row(&c[COL_PARENT], c[COL_PARENT].data.len, 1));
    }
    else {
        TRY(put_null(&c[COL_PARENT]));
    }
    TRY(put_string(&c[COL_NAME], s->name, s->name_len));
    TRY(put_name(&c[COL_KIND], rules->kinds, rules->n_kinds, s->kind));
    TRY(put_time(&c[COL_START], (int64_t)s->start, 1));
    TRY(put_time(&c[COL_END], (int64_t)s->end, s->end != 0));
    TRY(put_name(&c[COL_STATUS_CODE], rules->statuses, rules->n_statuses, s->code));
    if (s->message_len)
        TRY(put_string(&c[COL_STATUS_MESSAGE], s->message, s->message_len));
    else
        TRY(put_null(&c[COL_STATUS_MESSAGE]));
    for (int column = 0; column < N_LIFTED; column++) {
        Column *out = &c[COL_CUSTOMER + column];
        int32_t index = s->lifted[column];
        if (column == LIFT_CHANNEL && index >= 0)
            TRY(put_channel(rules, out, attr_at(d, index)->data, attr_at(d, index)->len));
        else
            TRY(put_attr_string(out, d, index));
    }
    TRY(put_null(&c[COL_OUTCOME]));
    if (s->turn_role >= 0) {
        TRY(put_attr_string(&d->turn[0], d, s->turn_role));
        TRY(put_attr_string(&d->turn[1], d, s->turn_text));
        TRY(put_attr_string(&d->turn[2], d, s->turn_name));
        TRY(end_offset_row(&c[COL_TURNS], d->turn[0].rows, 1));
    }
    else {
        TRY(end_offset_row(&c[COL_TURNS], d->turn[0].rows, 0));
    }
    TRY(write_attributes(d, &c[COL_ATTRIBUTES].data, s->first_attr, s->n_attrs));
    TRY(end_offset_row(&c[COL_ATTRIBUTES], c[COL_ATTRIBUTES].data.len, 1));
    TRY(put_null(&c[COL_EVENTS]));
    TRY(put_null(&c[COL_LINKS]));
    return write_context(d, s);
}

static int write_slow_span(Decoder *d, const SlowRow *row, const SpanRec *s)
{
    Column *c = d->col;
    for (int v = 0; v < N_VALUES; v++) {
        int column = VALUE_COLUMNS[v];
        if (column == COL_START)
            TRY(put_time(&c[column], row->start, !row->start_null));
        else if (column == COL_END)
            TRY(put_time(&c[column], row->end, !row->end_null));
        else if (column != COL_TURNS)
            TRY(put_text(&c[column], row->text[column]));
    }
    const TurnTexts *turns = VEC(d->slow_turns, TurnTexts) + row->first_turn;
    for (uint32_t i = 0; i < row->n_turns; i++)
        for (int k = 0; k < 3; k++)
            TRY(put_text(&d->turn[k], turns[i].field[k]));
    TRY(end_offset_row(&c[COL_TURNS], d->turn[0].rows, !row->turns_null));
    return write_context(d, s);
}

/* Room for the whole output up front, exact where it is known, estimated for the attributes: growing
 * megabyte buffers by doubling would copy them, and freshly touched pages cost a page fault each. */
static int reserve_columns(Decoder *d)
{
    size_t n = VEC_LEN(d->spans, SpanRec), attributes = 0, resource = 0;
    const SpanRec *spans = VEC(d->spans, SpanRec);
    const Attr *attrs = VEC(d->attrs, Attr);
    for (size_t i = 0; i < n; i++) {
        const SpanRec *s = &spans[i];
        const ScopeRec *scope = &VEC(d->scopes, ScopeRec)[s->scope];
        const ResourceRec *res = &VEC(d->resources, ResourceRec)[scope->resource];
        resource += res->how == SLOW ? (size_t)res->json.n : VEC(d->resource_at, Piece)[scope->resource].len;
        if (s->how == SLOW) {
            attributes += (size_t)VEC(d->slow, SlowRow)[s->slow].text[COL_ATTRIBUTES].n;
        }
        else if (s->how == FAST) {
            attributes += 2;
            for (uint32_t a = s->first_attr; a < s->first_attr + s->n_attrs; a++)
                attributes += attrs[a].key_len + attrs[a].len + 24; /* quotes, separators, a number */
        }
    }
    for (int column = 0; column < N_COLUMNS; column++) {
        MEM(buf_grow(&d->col[column].valid, n / 8 + 1));
        MEM(buf_grow(&d->col[column].offsets, (n + 1) * sizeof(int32_t)));
    }
    MEM(buf_grow(&d->col[COL_TRACE_ID].data, 32 * n));
    MEM(buf_grow(&d->col[COL_SPAN_ID].data, 16 * n));
    MEM(buf_grow(&d->col[COL_PARENT].data, 16 * n));
    MEM(buf_grow(&d->col[COL_START].data, sizeof(int64_t) * n));
    MEM(buf_grow(&d->col[COL_END].data, sizeof(int64_t) * n));
    MEM(buf_grow(&d->col[COL_ATTRIBUTES].data, attributes));
    MEM(buf_grow(&d->col[COL_RESOURCE].data, resource));
    return OK;
}

static int write_columns(Decoder *d)
{
    int32_t zero = 0;
    for (int column = 0; column < N_COLUMNS; column++)
        if (column != COL_START && column != COL_END)
            MEM(buf_put(&d->col[column].offsets, &zero, sizeof zero));
    for (int k = 0; k < 3; k++)
        MEM(buf_put(&d->turn[k].offsets, &zero, sizeof zero));
    TRY(write_resources(d));
    TRY(reserve_columns(d));
    const SpanRec *spans = VEC(d->spans, SpanRec);
    for (size_t i = 0; i < VEC_LEN(d->spans, SpanRec); i++) {
        const SpanRec *s = &spans[i];
        if (s->how == FAST) {
            TRY(write_fast_span(d, s));
        }
        else if (s->how == SLOW) {
            const SlowRow *row = &VEC(d->slow, SlowRow)[s->slow];
            if (!row->rejected)
                TRY(write_slow_span(d, row, s));
        }
    }
    d->rows = d->col[COL_TRACE_ID].rows;
    return OK;
}

/* ================================================================ step 4: Python objects */

/* An output buffer handed to Python without a copy: it owns the memory of a Buf and exports it through the
 * buffer protocol (pa.py_buffer keeps it alive as long as Arrow uses it). */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t len;
} BufferObject;

static int Buffer_getbuffer(BufferObject *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->len, 1, flags);
}

static void Buffer_dealloc(BufferObject *self)
{
    free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyBufferProcs Buffer_as_buffer = {
    .bf_getbuffer = (getbufferproc)Buffer_getbuffer,
};

static PyTypeObject BufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "journeyscope.warehouse._otlp_decode.Buffer",
    .tp_basicsize = sizeof(BufferObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bytes of one Arrow buffer written by the decoder (read-only, buffer protocol).",
    .tp_dealloc = (destructor)Buffer_dealloc,
    .tp_as_buffer = &Buffer_as_buffer,
};

/* The Buf as a Buffer object, which takes its memory over (the Buf is left empty). */
static PyObject *buffer_of(Buf *b)
{
    BufferObject *self = PyObject_New(BufferObject, &BufferType);
    if (self == NULL)
        return NULL;
    if (b->data == NULL) { /* nothing written: Arrow still wants an address */
        b->data = malloc(1);
        if (b->data == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
    }
    else if (b->cap - b->len > 4096) { /* give back what the estimate reserved in excess */
        char *data = realloc(b->data, b->len ? b->len : 1);
        if (data != NULL)
            b->data = data;
    }
    self->data = b->data;
    self->len = (Py_ssize_t)b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return (PyObject *)self;
}

static PyObject *validity_of(Column *c)
{
    if (!c->nulls)
        Py_RETURN_NONE;
    return buffer_of(&c->valid);
}

/* (validity, offsets, data) of a string column; (validity, data) of a time column. */
static PyObject *column_buffers(Column *c, int with_offsets)
{
    if (with_offsets)
        return Py_BuildValue("(NNN)", validity_of(c), buffer_of(&c->offsets), buffer_of(&c->data));
    return Py_BuildValue("(NN)", validity_of(c), buffer_of(&c->data));
}

static PyObject *build_result(Decoder *d)
{
    Py_ssize_t rejected = 0;
    PyObject *message = NULL; /* borrowed: the first non-empty reason, as DecodedBatch.reject keeps it */
    const SpanRec *spans = VEC(d->spans, SpanRec);
    for (size_t i = 0; i < VEC_LEN(d->spans, SpanRec); i++) {
        PyObject *reason;
        if (spans[i].how == REJECTED)
            reason = PyTuple_GET_ITEM(d->rules->reasons, spans[i].reason);
        else if (spans[i].how == SLOW && VEC(d->slow, SlowRow)[spans[i].slow].rejected)
            reason = VEC(d->slow, SlowRow)[spans[i].slow].values;
        else
            continue;
        rejected++;
        if (message == NULL || PyUnicode_GET_LENGTH(message) == 0)
            message = reason;
    }
    PyObject *columns = PyTuple_New(N_COLUMNS);
    if (columns == NULL)
        return NULL;
    for (int column = 0; column < N_COLUMNS; column++) {
        Column *c = &d->col[column];
        PyObject *item;
        if (column == COL_START || column == COL_END)
            item = column_buffers(c, 0);
        else if (column == COL_TURNS)
            item = Py_BuildValue("(NNnNNN)", validity_of(c), buffer_of(&c->offsets),
                                 (Py_ssize_t)d->turn[0].rows, column_buffers(&d->turn[0], 1),
                                 column_buffers(&d->turn[1], 1), column_buffers(&d->turn[2], 1));
        else
            item = column_buffers(c, 1);
        if (item == NULL) {
            Py_DECREF(columns);
            return NULL;
        }
        PyTuple_SET_ITEM(columns, column, item);
    }
    if (message == NULL)
        return Py_BuildValue("(nns N)", (Py_ssize_t)d->rows, rejected, "", columns);
    return Py_BuildValue("(nnON)", (Py_ssize_t)d->rows, rejected, message, columns);
}

static void decoder_free(Decoder *d)
{
    ResourceRec *resources = VEC(d->resources, ResourceRec);
    for (size_t i = 0; i < VEC_LEN(d->resources, ResourceRec); i++)
        Py_XDECREF(resources[i].values);
    SlowRow *slow = VEC(d->slow, SlowRow);
    for (size_t i = 0; i < VEC_LEN(d->slow, SlowRow); i++)
        Py_XDECREF(slow[i].values);
    Buf *bufs[] = {&d->resources, &d->scopes, &d->spans, &d->attrs, &d->doubles, &d->slow, &d->slow_turns,
                   &d->double_text, &d->double_at, &d->scratch, &d->resource_json, &d->resource_at};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        buf_free(bufs[i]);
    for (int column = 0; column < N_COLUMNS; column++) {
        buf_free(&d->col[column].valid);
        buf_free(&d->col[column].offsets);
        buf_free(&d->col[column].data);
    }
    for (int k = 0; k < 3; k++) {
        buf_free(&d->turn[k].valid);
        buf_free(&d->turn[k].offsets);
        buf_free(&d->turn[k].data);
    }
    free(d);
}

PyDoc_STRVAR(Rules_decode_doc,
"decode(body: bytes) -> tuple | None\n\n"
"(rows, rejected, error_message, columns) of one ExportTraceServiceRequest, the columns as Arrow buffers\n"
"in SPAN_SCHEMA order; None when the body is for the Python decoder to read (anything unusual).");

static PyObject *Rules_decode(RulesObject *self, PyObject *body)
{
    if (!PyBytes_CheckExact(body)) { /* immutable while the GIL is released */
        PyErr_Format(PyExc_TypeError, "decode() wants bytes, not %.100s", Py_TYPE(body)->tp_name);
        return NULL;
    }
    if (self->keep == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Rules were cleared");
        return NULL;
    }
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(body);
    size_t size = (size_t)PyBytes_GET_SIZE(body);
    if (size > INT32_MAX)
        Py_RETURN_NONE;
    Decoder *d = calloc(1, sizeof *d);
    if (d == NULL)
        return PyErr_NoMemory();
    d->rules = self;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = parse_request(d, data, size);
    Py_END_ALLOW_THREADS
    if (rc == OK && (VEC_LEN(d->slow, SlowRow) || d->n_slow_resources || d->doubles.len))
        rc = run_python_rules(d);
    if (rc == OK) {
        Py_BEGIN_ALLOW_THREADS
        rc = write_columns(d);
        Py_END_ALLOW_THREADS
    }
    PyObject *result = NULL;
    if (rc == OK) {
        result = build_result(d);
    }
    else if (rc == GIVE_UP) {
        result = Py_None;
        Py_INCREF(result);
    }
    else {
        PyErr_NoMemory();
    }
    decoder_free(d);
    return result;
}

/* ================================================================ the Rules type */

static int keep_text(RulesObject *self, PyObject *value, int none_ok, Text *out, const char *what)
{
    if (value == Py_None && none_ok) {
        out->s = NULL;
        out->n = 0;
        return 0;
    }
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Rules: %s must be str%s", what, none_ok ? " or None" : "");
        return -1;
    }
    out->s = PyUnicode_AsUTF8AndSize(value, &out->n);
    if (out->s == NULL || PyList_Append(self->keep, value) < 0)
        return -1;
    return 0;
}

/* The strings of an iterable into texts[0..max), their count in *count. */
static int keep_texts(RulesObject *self, PyObject *values, int none_ok, Text *texts, int max, int *count,
                      const char *what)
{
    PyObject *seq = PySequence_Fast(values, "Rules: expected an iterable");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > max) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "Rules: more than %d %s", max, what);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (keep_text(self, PySequence_Fast_GET_ITEM(seq, i), none_ok, &texts[i], what) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    *count = (int)n;
    Py_DECREF(seq);
    return 0;
}

/* A watched attribute key; its index in *index. */
static int add_watch(RulesObject *self, PyObject *key, int what, int *index)
{
    if (self->n_watch >= MAX_WATCH) {
        PyErr_SetString(PyExc_ValueError, "Rules: too many attribute keys");
        return -1;
    }
    if (keep_text(self, key, 0, &self->watch[self->n_watch], "an attribute key") < 0)
        return -1;
    self->watch_what[self->n_watch] = (uint8_t)what;
    *index = self->n_watch++;
    return 0;
}

static int add_watches(RulesObject *self, PyObject *keys, int what, uint8_t *indexes, int max, uint8_t *count)
{
    PyObject *seq = PySequence_Fast(keys, "Rules: expected a sequence of keys");
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > max) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "Rules: too many keys for one column");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int index;
        if (add_watch(self, PySequence_Fast_GET_ITEM(seq, i), what, &index) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        if (indexes)
            indexes[i] = (uint8_t)index;
    }
    if (count)
        *count = (uint8_t)n;
    Py_DECREF(seq);
    return 0;
}

/* Rules' constructor arguments, in their order. */
typedef struct {
    PyObject *span, *resource, *reasons, *kinds, *statuses, *lifted, *channel_aliases, *turn_keys;
    PyObject *turn_span, *turn_roles, *turn_sources, *turn_prefixes, *service_key;
    Py_ssize_t max_id_length;
} RulesArgs;

static int setup_rules(RulesObject *self, const RulesArgs *args)
{
    if (!PyCallable_Check(args->span) || !PyCallable_Check(args->resource)) {
        PyErr_SetString(PyExc_TypeError, "Rules: span and resource must be callables");
        return -1;
    }
    if (args->max_id_length < 0) {
        PyErr_SetString(PyExc_ValueError, "Rules: max_id_length must not be negative");
        return -1;
    }
    self->max_id_length = args->max_id_length;
    Py_INCREF(args->span);
    self->span = args->span;
    Py_INCREF(args->resource);
    self->resource = args->resource;
    self->reasons = PySequence_Tuple(args->reasons);
    if (self->reasons == NULL)
        return -1;
    if (PyTuple_GET_SIZE(self->reasons) != N_REASONS) {
        PyErr_Format(PyExc_ValueError, "Rules: reasons must be %d strings", N_REASONS);
        return -1;
    }
    Text ignored;
    for (int i = 0; i < N_REASONS; i++)
        if (keep_text(self, PyTuple_GET_ITEM(self->reasons, i), 0, &ignored, "a reason") < 0)
            return -1;
    if (keep_texts(self, args->kinds, 1, self->kinds, MAX_NAMES, &self->n_kinds, "kinds") < 0
        || keep_texts(self, args->statuses, 1, self->statuses, MAX_NAMES, &self->n_statuses, "statuses") < 0
        || keep_texts(self, args->turn_roles, 0, self->roles, MAX_NAMES, &self->n_roles, "roles") < 0
        || keep_texts(self, args->turn_prefixes, 0, self->prefixes, MAX_NAMES, &self->n_prefixes, "keys") < 0
        || keep_text(self, args->turn_span, 0, &self->turn_span, "turn_span") < 0
        || keep_text(self, args->service_key, 0, &self->service_key, "service_key") < 0)
        return -1;

    PyObject *columns = PySequence_Fast(args->lifted, "Rules: lifted must be a sequence");
    if (columns == NULL)
        return -1;
    if (PySequence_Fast_GET_SIZE(columns) != N_LIFTED) {
        Py_DECREF(columns);
        PyErr_Format(PyExc_ValueError, "Rules: lifted must give the keys of %d columns", N_LIFTED);
        return -1;
    }
    for (int column = 0; column < N_LIFTED; column++)
        if (add_watches(self, PySequence_Fast_GET_ITEM(columns, column), W_LIFT, self->lifted[column],
                        MAX_KEYS, &self->n_lifted[column]) < 0) {
            Py_DECREF(columns);
            return -1;
        }
    Py_DECREF(columns);

    PyObject *role, *text, *name;
    if (!PyArg_ParseTuple(args->turn_keys, "OOO;Rules: turn_keys must be (role, text, name)", &role, &text,
                          &name)
        || add_watch(self, role, W_ROLE, &self->role) < 0 || add_watch(self, text, W_TEXT, &self->text) < 0
        || add_watch(self, name, W_NAME, &self->name) < 0
        || add_watches(self, args->turn_sources, W_SOURCE, NULL, MAX_WATCH, NULL) < 0)
        return -1;

    /* A snapshot of the aliases: the dict may change later, the decoder reads these without the GIL. */
    if (!PyDict_Check(args->channel_aliases)) {
        PyErr_SetString(PyExc_TypeError, "Rules: channel_aliases must be a dict");
        return -1;
    }
    if (PyDict_GET_SIZE(args->channel_aliases) > MAX_NAMES) {
        PyErr_SetString(PyExc_ValueError, "Rules: too many channel aliases");
        return -1;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(args->channel_aliases, &pos, &key, &value)) {
        if (keep_text(self, key, 0, &self->alias_from[self->n_aliases], "a channel alias") < 0
            || keep_text(self, value, 0, &self->alias_to[self->n_aliases], "a channel") < 0)
            return -1;
        self->n_aliases++;
    }
    return 0;
}

static PyObject *Rules_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"span", "resource", "reasons", "kinds", "statuses", "lifted",
                               "channel_aliases", "turn_keys", "turn_span", "turn_roles", "turn_sources",
                               "turn_prefixes", "service_key", "max_id_length", NULL};
    RulesArgs a;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOOOOOOOn:Rules", keywords, &a.span, &a.resource,
                                     &a.reasons, &a.kinds, &a.statuses, &a.lifted, &a.channel_aliases,
                                     &a.turn_keys, &a.turn_span, &a.turn_roles, &a.turn_sources,
                                     &a.turn_prefixes, &a.service_key, &a.max_id_length))
        return NULL;
    RulesObject *self = (RulesObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->keep = PyList_New(0);
    if (self->keep == NULL
        || setup_rules(self, &a) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int Rules_traverse(RulesObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->span);
    Py_VISIT(self->resource);
    Py_VISIT(self->reasons);
    Py_VISIT(self->keep);
    return 0;
}

static int Rules_clear(RulesObject *self)
{
    Py_CLEAR(self->span);
    Py_CLEAR(self->resource);
    Py_CLEAR(self->reasons);
    Py_CLEAR(self->keep);
    return 0;
}

static void Rules_dealloc(RulesObject *self)
{
    PyObject_GC_UnTrack(self);
    Rules_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Rules_methods[] = {
    {"decode", (PyCFunction)Rules_decode, METH_O, Rules_decode_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Rules_doc,
"Rules(span, resource, reasons, kinds, statuses, lifted, channel_aliases, turn_keys, turn_span, turn_roles,\n"
"      turn_sources, turn_prefixes, service_key, max_id_length)\n\n"
"The journeyscope conventions the decoder applies (see otlp.py), and its decode() method.");

static PyTypeObject RulesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "journeyscope.warehouse._otlp_decode.Rules",
    .tp_basicsize = sizeof(RulesObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Rules_doc,
    .tp_new = Rules_new,
    .tp_traverse = (traverseproc)Rules_traverse,
    .tp_clear = (inquiry)Rules_clear,
    .tp_dealloc = (destructor)Rules_dealloc,
    .tp_methods = Rules_methods,
};

/* ================================================================ the module */

/* MESSAGES: {message full name: ((number, name, type, repeated), ...)}, for otlp.py's schema check. */
static PyObject *messages_table(void)
{
    PyObject *table = PyDict_New();
    if (table == NULL)
        return NULL;
    for (size_t m = 0; m < sizeof MESSAGES / sizeof MESSAGES[0]; m++) {
        PyObject *fields = PyList_New(0);
        if (fields == NULL)
            goto error;
        for (int number = 1; number <= MAX_FIELD; number++) {
            const FieldSpec *field = &MESSAGES[m]->fields[number];
            if (field->type == T_NONE)
                continue;
            PyObject *item = Py_BuildValue("(iss O)", number, field->name, TYPE_NAMES[field->type],
                                           field->repeated ? Py_True : Py_False);
            if (item == NULL || PyList_Append(fields, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(fields);
                goto error;
            }
            Py_DECREF(item);
        }
        PyObject *frozen = PyList_AsTuple(fields);
        Py_DECREF(fields);
        if (frozen == NULL || PyDict_SetItemString(table, MESSAGES[m]->name, frozen) < 0) {
            Py_XDECREF(frozen);
            goto error;
        }
        Py_DECREF(frozen);
    }
    return table;
error:
    Py_DECREF(table);
    return NULL;
}

static PyObject *columns_tuple(void)
{
    PyObject *names = PyTuple_New(N_COLUMNS);
    if (names == NULL)
        return NULL;
    for (int column = 0; column < N_COLUMNS; column++) {
        PyObject *name = PyUnicode_FromString(COLUMN_NAMES[column]);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, column, name);
    }
    return names;
}

PyDoc_STRVAR(module_doc, "OTLP/protobuf trace requests decoded into Arrow column buffers (see otlp.py).");

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "journeyscope.warehouse._otlp_decode",
    .m_doc = module_doc,
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__otlp_decode(void)
{
    if (PyType_Ready(&RulesType) < 0 || PyType_Ready(&BufferType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    Py_INCREF(&RulesType);
    if (PyModule_AddObject(module, "Rules", (PyObject *)&RulesType) < 0) {
        Py_DECREF(&RulesType);
        Py_DECREF(module);
        return NULL;
    }
    PyObject *messages = messages_table();
    if (messages == NULL || PyModule_AddObject(module, "MESSAGES", messages) < 0) {
        Py_XDECREF(messages);
        Py_DECREF(module);
        return NULL;
    }
    PyObject *columns = columns_tuple();
    if (columns == NULL || PyModule_AddObject(module, "COLUMNS", columns) < 0) {
        Py_XDECREF(columns);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
