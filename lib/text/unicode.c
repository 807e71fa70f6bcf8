/*
 * Class lookup in the generated Unicode tables: a binary search over the
 * ranges (ASCII is answered by the pre-splitter before it gets here).
 */
#include "text/unicode.h"

int tlmi_unicode_class(uint32_t code) {
    size_t lo = 0, hi = tlmi_unicode_range_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tlmi_unicode_ranges[mid].last < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tlmi_unicode_range_count && tlmi_unicode_ranges[lo].first <= code)
        return tlmi_unicode_ranges[lo].cls;
    return TLMI_UNI_OTHER;
}
