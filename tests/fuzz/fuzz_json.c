/* Fuzz target: the JSON reader (tlmi_json_parse). An accepted document is
 * walked completely: every string valid UTF-8, every object member found
 * again by its key, counts consistent. */
#include <string.h>

#include "base/host.h"
#include "base/utf8.h"
#include "fuzz.h"
#include "io/json.h"

static void walk(const tlmi_json_value *value, int depth) {
    fuzz_check(depth <= 1000, "json: depth within the limit");
    size_t count = tlmi_json_count(value);
    if (value->type == TLMI_JSON_STRING) {
        size_t length = 0;
        const char *bytes = tlmi_json_string(value, &length);
        fuzz_check(bytes != NULL && bytes[length] == '\0', "json: strings end in NUL");
        fuzz_check(tlmi_utf8_valid((const unsigned char *)bytes, length, NULL),
                   "json: strings are UTF-8");
    } else if (value->type == TLMI_JSON_ARRAY) {
        for (size_t i = 0; i < count; i++)
            walk(tlmi_json_array_at(value, i), depth + 1);
        fuzz_check(tlmi_json_array_at(value, count) == NULL, "json: array bound");
    } else if (value->type == TLMI_JSON_OBJECT) {
        for (size_t i = 0; i < count; i++) {
            const tlmi_json_member *m = tlmi_json_object_at(value, i);
            fuzz_check(m != NULL, "json: member exists");
            fuzz_check(tlmi_json_object_get_n(value, m->key, m->key_length) != NULL,
                       "json: a member is found by its key");
            walk(&m->value, depth + 1);
        }
    } else {
        fuzz_check(count == 0, "json: scalars have no elements");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(&host, (const char *)data, size, NULL, &doc);
    fuzz_check((status == TLM_OK) == (doc != NULL), "json: doc set on success");
    if (status != TLM_OK) {
        fuzz_check(host.last_error[0] != '\0', "json: a failure has a message");
        return 0;
    }
    walk(tlmi_json_root(doc), 0);
    tlmi_json_free(doc);
    return 0;
}
