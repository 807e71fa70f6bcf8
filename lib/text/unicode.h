/*
 * The Unicode classes GPT-2's pre-tokenization asks about (\p{L}, \p{N},
 * \s), from tables generated from the Unicode Character Database by
 * scripts/gen_unicode_tables.py (unicode_tables.c), never from the C
 * library's locale.
 */
#ifndef TLM_LIB_TEXT_UNICODE_H
#define TLM_LIB_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum tlmi_unicode_class {
    TLMI_UNI_OTHER = 0,  /* everything else, and invalid UTF-8 bytes */
    TLMI_UNI_LETTER = 1, /* general category L* */
    TLMI_UNI_NUMBER = 2, /* general category N* */
    TLMI_UNI_SPACE = 3   /* property White_Space */
};

/* Code points first..last (inclusive) are of class `cls`. */
typedef struct tlmi_unicode_range {
    uint32_t first, last;
    int32_t cls; /* a tlmi_unicode_class other than OTHER */
} tlmi_unicode_range;

/* The generated tables: sorted, disjoint ranges. */
extern const tlmi_unicode_range tlmi_unicode_ranges[];
extern const size_t tlmi_unicode_range_count;
extern const char tlmi_unicode_version[];

/* The class of a code point (any uint32_t; above U+10FFFF is OTHER). */
int tlmi_unicode_class(uint32_t code);

#endif
