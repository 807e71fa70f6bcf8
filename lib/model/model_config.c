#include "model_config.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "io/json.h"

/* The enumerations' names in JSON, indexed by value. */
static const char *const position_names[] = {"learned", "sinusoidal", "rotary"};
static const char *const norm_names[] = {"layer", "rms"};
static const char *const placement_names[] = {"pre", "post"};
static const char *const activation_names[] = {"gelu", "gelu_exact", "relu", "swiglu"};
/* enum tlm_weight_format: "f32" is never written (absent means it). */
static const char *const weights_names[] = {"f32", "bf16", "int8"};

#define COUNT(array) ((int32_t)(sizeof array / sizeof array[0]))

const char *tlmi_weight_format_name(int32_t format) {
    return format >= 0 && format < COUNT(weights_names) ? weights_names[format]
                                                        : "unknown";
}

static const char *enum_name(const char *const *names, int32_t count,
                             int32_t value) {
    return value >= 0 && value < count ? names[value] : "invalid";
}

int tlmi_model_config_to_json(tlmi_host *host, const tlm_model_config *c,
                              int32_t weights, char **text, size_t *size) {
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, host);
    tlmi_json_write_object_begin(&w);
#define INT_FIELD(name)                        \
    tlmi_json_write_key(&w, #name);            \
    tlmi_json_write_int64(&w, c->name)
#define FLOAT_FIELD(name)                      \
    tlmi_json_write_key(&w, #name);            \
    tlmi_json_write_float(&w, c->name)
#define ENUM_FIELD(name, names)                \
    tlmi_json_write_key(&w, #name);            \
    tlmi_json_write_string(&w, enum_name(names, COUNT(names), c->name))
    INT_FIELD(vocab_size);
    INT_FIELD(d_model);
    INT_FIELD(n_heads);
    /* Only for grouped-query attention, so that the files of multi-head
     * models stay as they were (a reader takes its absence as n_heads). */
    if (c->n_kv_heads != 0 && c->n_kv_heads != c->n_heads) {
        INT_FIELD(n_kv_heads);
    }
    INT_FIELD(head_dim);
    INT_FIELD(d_ff);
    INT_FIELD(n_encoder_layers);
    INT_FIELD(n_decoder_layers);
    INT_FIELD(max_context);
    ENUM_FIELD(position, position_names);
    ENUM_FIELD(norm, norm_names);
    ENUM_FIELD(norm_placement, placement_names);
    ENUM_FIELD(activation, activation_names);
    INT_FIELD(bias);
    INT_FIELD(tied_output);
    FLOAT_FIELD(embedding_dropout);
    FLOAT_FIELD(residual_dropout);
    FLOAT_FIELD(norm_eps);
    FLOAT_FIELD(rope_base);
    /* A 64-bit seed does not survive a JSON reader that uses doubles:
     * written as a decimal string. */
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->init_seed);
    tlmi_json_write_key(&w, "init_seed");
    tlmi_json_write_string(&w, seed);
    if (weights != TLM_WEIGHTS_F32) {
        tlmi_json_write_key(&w, "weights");
        tlmi_json_write_string(&w, enum_name(weights_names, COUNT(weights_names),
                                             weights));
    }
#undef INT_FIELD
#undef FLOAT_FIELD
#undef ENUM_FIELD
    tlmi_json_write_object_end(&w);
    const char *result = NULL;
    size_t length = 0;
    int status = tlmi_json_writer_result(&w, &result, &length);
    if (status == TLM_OK) {
        char *copy = tlmi_host_alloc(host, length + 1, 1);
        if (copy == NULL) {
            status = tlmi_fail(host, TLM_E_NOMEM,
                               "configuration JSON: out of memory");
        } else {
            memcpy(copy, result, length);
            copy[length] = '\0';
            *text = copy;
            *size = length;
        }
    }
    tlmi_json_writer_release(&w);
    return status;
}

/* The configuration's `key` (which must be there), and its name for
 * messages in field[FIELD_NAME_MAX]. */
#define FIELD_NAME_MAX 96
static int find_field(tlmi_host *host, const char *what,
                      const tlmi_json_value *object, const char *key,
                      const tlmi_json_value **value, char *field) {
    *value = tlmi_json_object_get(object, key);
    TLMI_CHECK(host, *value != NULL, TLM_E_FORMAT,
               "%s: configuration lacks \"%s\"", what, key);
    snprintf(field, FIELD_NAME_MAX, "%s: configuration field \"%s\"", what,
             key);
    return TLM_OK;
}

static int read_int(tlmi_host *host, const char *what,
                    const tlmi_json_value *object, const char *key,
                    int64_t min, int64_t max, int32_t *out) {
    const tlmi_json_value *value = NULL;
    char field[FIELD_NAME_MAX];
    TLMI_TRY(find_field(host, what, object, key, &value, field));
    int64_t number = 0;
    int status = tlmi_json_get_int64(host, value, field, min, max, &number);
    if (status == TLM_OK)
        *out = (int32_t)number;
    return status;
}

static int read_float(tlmi_host *host, const char *what,
                      const tlmi_json_value *object, const char *key,
                      float *out) {
    const tlmi_json_value *value = NULL;
    char field[FIELD_NAME_MAX];
    TLMI_TRY(find_field(host, what, object, key, &value, field));
    double number = 0;
    int status = tlmi_json_get_double(host, value, field, &number);
    if (status == TLM_OK)
        *out = (float)number;
    return status;
}

static int read_enum(tlmi_host *host, const char *what,
                     const tlmi_json_value *object, const char *key,
                     const char *const *names, int32_t count, int32_t *out) {
    const tlmi_json_value *value = tlmi_json_object_get(object, key);
    size_t length = 0;
    const char *text = value != NULL ? tlmi_json_string(value, &length) : NULL;
    if (text == NULL)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: configuration field \"%s\" is missing or not a "
                         "string",
                         what, key);
    for (int32_t i = 0; i < count; i++)
        if (strlen(names[i]) == length && memcmp(names[i], text, length) == 0) {
            *out = i;
            return TLM_OK;
        }
    return tlmi_fail(host, TLM_E_FORMAT,
                     "%s: configuration field \"%s\" has the unknown value "
                     "\"%.40s\"",
                     what, key, text);
}

/* The seed: a decimal string (as written above) or a plain integer. */
static int read_seed(tlmi_host *host, const char *what,
                     const tlmi_json_value *object, uint64_t *out) {
    const tlmi_json_value *value = NULL;
    char field[FIELD_NAME_MAX];
    TLMI_TRY(find_field(host, what, object, "init_seed", &value, field));
    size_t length = 0;
    const char *text = tlmi_json_string(value, &length);
    if (text == NULL) {
        int64_t number = 0;
        int status = tlmi_json_get_int64(host, value, field, 0, INT64_MAX, &number);
        if (status == TLM_OK)
            *out = (uint64_t)number;
        return status;
    }
    uint64_t seed = 0;
    if (length == 0 || length > 20)
        goto bad;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            goto bad;
        unsigned digit = (unsigned)(text[i] - '0');
        if (seed > (UINT64_MAX - digit) / 10)
            goto bad;
        seed = seed * 10 + digit;
    }
    *out = seed;
    return TLM_OK;
bad:
    return tlmi_fail(host, TLM_E_FORMAT,
                     "%s: configuration field \"init_seed\" is not an unsigned "
                     "64-bit decimal",
                     what);
}

static const char *const known_fields[] = {
    "vocab_size", "d_model", "n_heads", "head_dim", "d_ff",
    "n_encoder_layers", "n_decoder_layers", "max_context", "position", "norm",
    "norm_placement", "activation", "bias", "tied_output", "embedding_dropout",
    "residual_dropout", "norm_eps", "rope_base", "init_seed", "n_kv_heads",
    "weights"};

/* Every field of the configuration, in the order they are checked. */
static int read_fields(tlmi_host *host, const char *what,
                       const tlmi_json_value *root, tlm_model_config *c) {
    const int64_t big = INT32_MAX;
    TLMI_TRY(read_int(host, what, root, "vocab_size", 1, big, &c->vocab_size));
    TLMI_TRY(read_int(host, what, root, "d_model", 1, big, &c->d_model));
    TLMI_TRY(read_int(host, what, root, "n_heads", 1, big, &c->n_heads));
    /* Optional: absent means n_heads (multi-head attention). */
    c->n_kv_heads = c->n_heads;
    if (tlmi_json_object_get(root, "n_kv_heads") != NULL)
        TLMI_TRY(read_int(host, what, root, "n_kv_heads", 1, c->n_heads,
                          &c->n_kv_heads));
    TLMI_TRY(read_int(host, what, root, "head_dim", 1, big, &c->head_dim));
    TLMI_TRY(read_int(host, what, root, "d_ff", 1, big, &c->d_ff));
    TLMI_TRY(read_int(host, what, root, "n_encoder_layers", 0, big,
                      &c->n_encoder_layers));
    TLMI_TRY(read_int(host, what, root, "n_decoder_layers", 0, big,
                      &c->n_decoder_layers));
    TLMI_TRY(read_int(host, what, root, "max_context", 1, big,
                      &c->max_context));
    TLMI_TRY(read_enum(host, what, root, "position", position_names,
                       COUNT(position_names), &c->position));
    TLMI_TRY(read_enum(host, what, root, "norm", norm_names,
                       COUNT(norm_names), &c->norm));
    TLMI_TRY(read_enum(host, what, root, "norm_placement", placement_names,
                       COUNT(placement_names), &c->norm_placement));
    TLMI_TRY(read_enum(host, what, root, "activation", activation_names,
                       COUNT(activation_names), &c->activation));
    TLMI_TRY(read_int(host, what, root, "bias", 0, 1, &c->bias));
    TLMI_TRY(read_int(host, what, root, "tied_output", 0, 1, &c->tied_output));
    TLMI_TRY(read_float(host, what, root, "embedding_dropout",
                        &c->embedding_dropout));
    TLMI_TRY(read_float(host, what, root, "residual_dropout",
                        &c->residual_dropout));
    TLMI_TRY(read_float(host, what, root, "norm_eps", &c->norm_eps));
    TLMI_TRY(read_float(host, what, root, "rope_base", &c->rope_base));
    return read_seed(host, what, root, &c->init_seed);
}

int tlmi_model_config_from_json(tlmi_host *host, const char *what,
                                const char *text, size_t size,
                                tlm_model_config *c, int32_t *weights) {
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(host, text, size, NULL, &doc);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "%s: configuration", what);
    const tlmi_json_value *root = tlmi_json_root(doc);
    if (root->type != TLMI_JSON_OBJECT) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "%s: the configuration is not a JSON object", what);
        goto cleanup;
    }
    for (size_t i = 0; i < tlmi_json_count(root); i++) {
        const tlmi_json_member *member = tlmi_json_object_at(root, i);
        int known = 0;
        for (int32_t k = 0; k < COUNT(known_fields); k++)
            known |= strlen(known_fields[k]) == member->key_length &&
                     memcmp(known_fields[k], member->key, member->key_length) == 0;
        if (!known) {
            /* The key lives in the document: reported before it is freed. */
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: unknown configuration field \"%.60s\" "
                               "(written by a newer tlm?)",
                               what, member->key);
            goto cleanup;
        }
    }
    tlm_model_config_init(c);
    status = read_fields(host, what, root, c);
    int32_t format = TLM_WEIGHTS_F32;
    if (status == TLM_OK && tlmi_json_object_get(root, "weights") != NULL)
        status = read_enum(host, what, root, "weights", weights_names,
                           COUNT(weights_names), &format);
    if (status == TLM_OK && weights != NULL)
        *weights = format;
    else if (status == TLM_OK && format != TLM_WEIGHTS_F32)
        status = tlmi_fail(host, TLM_E_UNSUPPORTED,
                           "%s: the configuration says \"weights\": \"%s\"; "
                           "this reader takes float32 values only",
                           what, weights_names[format]);
cleanup:
    tlmi_json_free(doc);
    return status;
}
